"""A CNN's graph, its scale ends, and the network cut into pieces at chosen nodes.

The graph comes from torchvision's feature-extraction tracer (``NodePathTracer``, with its default
leaf modules and wrapped ops), so every node has the name ``get_graph_node_names`` gives it, and a
module called three times (a ResNet block's ``relu``) is three nodes. A node where the network can
be cut is one that every path from the input to the logits passes through (no edge of the graph
jumps over it): a residual block's output, not a tensor inside the block.

The scale ends (the taps) are, for each spatial size in turn, the last cut whose tensor has that
size: the last activation if the size has one, else the last node that is neither a pooling, a
normalisation nor a layout change (a ConvNeXt stage's output). A size that holds only pooling (a
max-pool's output before the next convolution) has no tap, and neither has the globally pooled 1x1.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import operator
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.LeakyReLU,
    nn.ELU,
    nn.Mish,
    nn.PReLU,
    nn.Hardtanh,
)
#: Activations whose output is never negative (a statistic may skip clamping).
RECTIFIERS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)
_ACTIVATION_FUNCTIONS = {
    F.relu: True,
    torch.relu: True,
    F.relu6: True,
    F.gelu: False,
    F.silu: False,
    F.selu: False,
    torch.selu: False,
    F.hardswish: False,
    F.elu: False,
    F.leaky_relu: False,
    F.mish: False,
}
_POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Identity)
_NORMS = (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d, nn.LocalResponseNorm)
_POOL_FUNCTIONS = {F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
_LAYOUT_METHODS = {"permute", "transpose", "contiguous", "view", "reshape", "flatten"}


def _leaf_modules() -> list[type[nn.Module]]:
    """torchvision's own ops are leaves, as its feature extraction makes them (StochasticDepth
    reads ``self.training``), except its Sequential blocks (``Conv2dNormActivation``), whose
    activation must be a node of its own to be found as a scale's end."""
    import torchvision

    members = inspect.getmembers(torchvision.ops)
    return [
        m
        for _, m in members
        if inspect.isclass(m) and issubclass(m, nn.Module) and not issubclass(m, nn.Sequential)
    ]


@dataclass
class Traced:
    """A network's traced graph (in eval mode) with torchvision's node names."""

    module: fx.GraphModule
    names: dict[fx.Node, str]

    @property
    def nodes(self) -> list[fx.Node]:
        return list(self.module.graph.nodes)

    def node(self, name: str) -> fx.Node:
        """The node called ``name``, or the last node inside the module ``name``."""
        found = None
        for node, qualname in self.names.items():
            if qualname == name or qualname.startswith(name + "."):
                found = node
        if found is None:
            raise ValueError(f"no node {name!r} in the traced graph")
        return found


def _ops(tracer_names: dict[fx.Node, str]) -> list[tuple[str, str]]:
    return [(name, node.op) for node, name in tracer_names.items()]


#: A module's hooks that run when it is called (torch.fx runs those of every module it traces into).
_CALL_HOOKS = (
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_backward_pre_hooks",
    "_backward_hooks",
)


def module_hooks(net: nn.Module) -> list[str]:
    """The call hooks registered on ``net``'s modules, as ``module: hook`` (the module's name,
    ``<root>`` for ``net`` itself, and the hook function's qualified name)."""
    found = []
    for name, module in net.named_modules():
        for attr in _CALL_HOOKS:
            for hook in getattr(module, attr, {}).values():
                label = getattr(hook, "__qualname__", type(hook).__name__)
                found.append(f"{name or '<root>'}: {label}")
    return found


@contextlib.contextmanager
def hooks_set_aside(net: nn.Module) -> Iterator[None]:
    """``net``'s modules without their call hooks inside the block, the same hook dictionaries
    (so every handle still removes its hook) put back exactly afterwards, even on an error.

    Tracing runs a hook of every module it traces into, on proxies: another library's hook that
    branches on its output (LLNL/fastcam's ``if output.sum() > 0``) breaks the trace, one that stores
    its output would store a proxy. The graph is the network's own computation without them."""
    saved = []
    for module in net.modules():
        for attr in _CALL_HOOKS:
            hooks = module.__dict__.get(attr)
            if hooks:
                saved.append((module, attr, hooks))
                module.__dict__[attr] = OrderedDict()
    try:
        yield
    finally:
        for module, attr, hooks in saved:
            module.__dict__[attr] = hooks


def trace(net: nn.Module, check_modes: bool = True) -> Traced:
    """Trace ``net`` in eval mode (and, with ``check_modes``, in train mode too, to refuse a
    network whose graph differs between the two), with its modules' hooks set aside
    (:func:`hooks_set_aside`)."""
    import torchvision
    from torchvision.models.feature_extraction import NodePathTracer

    training = [m for m in net.modules() if m.training]
    graphs = {}
    try:
        with hooks_set_aside(net):
            for mode in (True, False) if check_modes else (False,):
                net.train(mode)
                tracer = NodePathTracer(
                    autowrap_modules=(math, torchvision.ops), leaf_modules=_leaf_modules()
                )
                graph = tracer.trace(net)
                graphs[mode] = (tracer, graph)
    except Exception as err:
        raise ValueError(
            f"{type(net).__name__} cannot be traced by torch.fx ({type(err).__name__}: {err}): "
            "its taps cannot be found from its graph; name the modules to tap, in order, with "
            "+model.taps=[<module name>,...] (e.g. +model.taps=[layer1,layer2]) to tap them by "
            "forward hooks instead"
        ) from None
    finally:
        net.eval()
        for module in training:
            module.training = True
    if check_modes and _ops(graphs[True][0].node_to_qualname) != _ops(
        graphs[False][0].node_to_qualname
    ):
        raise ValueError(
            f"{type(net).__name__} runs a different graph in training and in eval mode (auxiliary "
            "outputs?): roarkar needs one graph to cut into stages"
        )
    tracer, graph = graphs[False]
    return Traced(fx.GraphModule(tracer.root, graph, type(net).__name__), tracer.node_to_qualname)


def _path(nodes: list[fx.Node]) -> list[fx.Node]:
    """Nodes on some path from the input placeholder to the output."""
    source = next(n for n in nodes if n.op == "placeholder")
    forward = {source}
    for n in nodes:
        if any(a in forward for a in n.all_input_nodes):
            forward.add(n)
    backward = {nodes[-1]}
    for n in reversed(nodes):
        if any(u in backward for u in n.users):
            backward.add(n)
    return [n for n in nodes if n in forward and n in backward]


def cut_nodes(traced: Traced) -> list[fx.Node]:
    """Nodes every input-to-output path passes through, in execution order (the input included)."""
    path = _path(traced.nodes)
    index = {n: i for i, n in enumerate(path)}
    cuts, reach = [], 0
    for i, node in enumerate(path):
        if reach <= i:
            cuts.append(node)
        for user in node.users:
            if user in index:
                reach = max(reach, index[user])
    return cuts


def activation_types(traced: Traced) -> set[str]:
    """The activations a network applies: module class names, or function names."""
    found = set()
    for node in traced.nodes:
        if activation(traced, node) is None:
            continue
        if node.op == "call_module":
            found.add(type(traced.module.get_submodule(node.target)).__name__)
        else:
            found.add(getattr(node.target, "__name__", str(node.target)))
    return found


def activation(traced: Traced, node: fx.Node) -> bool | None:
    """True for a rectifier (never negative), False for another activation, None otherwise."""
    if node.op == "call_module":
        module = traced.module.get_submodule(node.target)
        if isinstance(module, ACTIVATIONS):
            return isinstance(module, RECTIFIERS)
        return None
    if node.op == "call_function":
        return _ACTIVATION_FUNCTIONS.get(node.target)
    if node.op == "call_method" and node.target in ("relu", "relu_"):
        return True
    return None


def _plain_feature(traced: Traced, node: fx.Node) -> bool:
    """Not a pooling, a normalisation nor a layout change."""
    if node.op == "call_module":
        module = traced.module.get_submodule(node.target)
        name = type(module).__name__
        return not (isinstance(module, _POOLING + _NORMS) or "Norm" in name or name == "Permute")
    if node.op == "call_function":
        return node.target not in _POOL_FUNCTIONS and node.target not in (
            torch.permute,
            torch.flatten,
            F.layer_norm,
            F.batch_norm,
        )
    if node.op == "call_method":
        return node.target not in _LAYOUT_METHODS
    return node.op != "placeholder"


def _channels_last(traced: Traced) -> set[fx.Node]:
    """Nodes whose 4-d tensor is [B, H, W, C]: after a permute to channels-last, until one back."""
    last: set[fx.Node] = set()
    for node in traced.nodes:
        dims = None
        if node.op == "call_module":
            dims = getattr(traced.module.get_submodule(node.target), "dims", None)
        elif node.op == "call_method" and node.target == "permute":
            dims = node.args[1:] if len(node.args) > 2 else node.args[1]
        elif node.op == "call_function" and node.target is torch.permute:
            dims = node.args[1]
        if dims is not None and list(dims) in ([0, 2, 3, 1], [0, 3, 1, 2]):
            if list(dims) == [0, 2, 3, 1]:
                last.add(node)
            continue
        if any(a in last for a in node.all_input_nodes[:1]):
            last.add(node)
    return last


def first_conv_channels(net: nn.Module) -> int:
    """Input channels of the first convolution (3 for RGB networks, 1 for grey ones)."""
    conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError(f"{type(net).__name__} has no Conv2d: not a CNN, so no spatial taps")
    return conv.in_channels


def scale_ends(traced: Traced, probe_size: int = 64) -> list[fx.Node]:
    """The taps of a traced CNN: the last cut at each spatial size (see the module docstring),
    from the shapes of one forward pass of a ``probe_size`` px zero image."""
    groups: list[tuple[tuple[int, int], list[fx.Node]]] = []
    for node in spatial_cuts(traced, probe_size):
        size = tuple(int(s) for s in node.meta["tensor_meta"].shape[-2:])
        if not groups or groups[-1][0] != size:
            groups.append((size, []))
        groups[-1][1].append(node)
    ends = []
    for _, nodes in groups:
        acts = [n for n in nodes if activation(traced, n) is not None]
        plain = [n for n in nodes if _plain_feature(traced, n)]
        if acts or plain:
            ends.append((acts or plain)[-1])
    return ends


def pre_activation(traced: Traced, node: fx.Node, cuts: set[fx.Node]) -> fx.Node | None:
    """The input of the activation ``node`` when it is a cut too (the tensor before the
    activation, for statistics of pre-ReLU values); None when ``node`` is not an activation."""
    if activation(traced, node) is None or not node.args:
        return None
    pre = node.args[0]
    return pre if isinstance(pre, fx.Node) and pre in cuts else None


def subgraph(
    traced: Traced, root: nn.Module, start: fx.Node | None, end: fx.Node
) -> fx.GraphModule:
    """The network ``root`` from ``start``'s output (or the input) to ``end``'s, as one GraphModule
    that shares ``root``'s modules and parameters. ``start`` must be a cut before ``end``."""
    needed: set[fx.Node] = set()
    stack = [end]
    while stack:
        node = stack.pop()
        if node in needed or node is start:
            continue
        if node.op == "placeholder" and start is not None:
            raise ValueError(f"{end.name} depends on the input other than through {start.name}")
        needed.add(node)
        stack.extend(node.all_input_nodes)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    x = graph.placeholder("x")
    if start is not None:
        env[start] = x
    for node in traced.nodes:
        if node not in needed:
            continue
        env[node] = x if node.op == "placeholder" else graph.node_copy(node, env.__getitem__)
    graph.output(env[end])
    return fx.GraphModule(root, graph, "Piece")


def propagate_shapes(traced: Traced, probe_size: int = 64) -> None:
    """Record each node's output shape (``node.meta["tensor_meta"]``) for one probe image, run
    in eval mode (no BatchNorm statistic or random number is touched)."""
    from torch.fx.passes.shape_prop import ShapeProp

    channels = first_conv_channels(traced.module)
    weight = next(traced.module.parameters())
    probe = torch.zeros(
        1, channels, probe_size, probe_size, dtype=weight.dtype, device=weight.device
    )
    training = [m for m in traced.module.modules() if m.training]
    try:
        traced.module.eval()
        with torch.no_grad():
            ShapeProp(traced.module).propagate(probe)
    except RuntimeError as err:
        raise ValueError(
            f"{traced.module.__class__.__name__}: a {probe_size} px probe image does not run "
            f"through it ({str(err).splitlines()[0]}); give the network an ``image_size`` "
            "attribute with the size it takes"
        ) from None
    finally:
        for module in training:
            module.training = True


def spatial_cuts(traced: Traced, probe_size: int = 64) -> list[fx.Node]:
    """Cuts whose tensor is a [B, C, h, w] map larger than 1x1 for a ``probe_size`` px image (not
    the input, not a channels-last tensor inside a LayerNorm), in execution order."""
    propagate_shapes(traced, probe_size)
    layout = _channels_last(traced)

    def spatial(node: fx.Node) -> bool:
        shape = getattr(node.meta.get("tensor_meta"), "shape", None)
        return shape is not None and len(shape) == 4 and tuple(shape[-2:]) != (1, 1)

    return [
        n for n in cut_nodes(traced) if n.op != "placeholder" and spatial(n) and n not in layout
    ]


def hidden_activations(traced: Traced, probe_size: int = 64) -> list[fx.Node]:
    """Every activation that is a cut and a spatial map: the hidden layers of seed 003's
    DeepMaps (17 on ResNet-50: the stem ReLU and each residual block's output; 13 on VGG-16)."""
    return [n for n in spatial_cuts(traced, probe_size) if activation(traced, n) is not None]


def with_outputs(traced: Traced, root: nn.Module, nodes: Sequence[fx.Node]) -> fx.GraphModule:
    """The whole network returning ``(logits, *values of nodes)``; each kept value is cloned
    before the rest of the network uses it, so in-place operations after it cannot change it
    (gradients with respect to the kept values are then those of the network)."""
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    kept = []
    for node in traced.nodes:
        if node.op == "output":
            continue
        copy = graph.node_copy(node, env.__getitem__)
        if node in nodes:
            kept.append(copy)
            copy = graph.call_method("clone", (copy,))
        env[node] = copy
    if len(kept) != len(nodes):
        raise ValueError("with_outputs: a node is not in the traced graph")
    graph.output((env[output_node(traced)], *kept))
    return fx.GraphModule(root, graph, "WithOutputs")


def output_node(traced: Traced) -> fx.Node:
    """The node the network returns (one tensor: the logits)."""
    out = traced.nodes[-1]
    value = out.args[0]
    if not isinstance(value, fx.Node):
        raise ValueError("the network returns more than one tensor: expected the logits only")
    return value


def modules_of(piece: fx.GraphModule, net: nn.Module) -> list[nn.Module]:
    """The network's modules a piece calls (its parameters are the piece's)."""
    return [net.get_submodule(n.target) for n in piece.graph.nodes if n.op == "call_module"]


def parameters_of(piece: fx.GraphModule, net: nn.Module) -> list[nn.Parameter]:
    """Parameters a piece uses: those of the modules it calls and those it reads directly."""
    params: dict[int, nn.Parameter] = {}
    for module in modules_of(piece, net):
        params.update((id(p), p) for p in module.parameters())
    for node in piece.graph.nodes:
        if node.op == "get_attr":
            value = operator.attrgetter(node.target)(net)
            if isinstance(value, nn.Parameter):
                params[id(value)] = value
    return list(params.values())


def run(pieces: Sequence[nn.Module], x: Tensor) -> Tensor:
    for piece in pieces:
        x = piece(x)
    return x


__all__ = [
    "ACTIVATIONS",
    "RECTIFIERS",
    "Traced",
    "activation",
    "activation_types",
    "cut_nodes",
    "hidden_activations",
    "propagate_shapes",
    "with_outputs",
    "first_conv_channels",
    "hooks_set_aside",
    "module_hooks",
    "modules_of",
    "output_node",
    "parameters_of",
    "pre_activation",
    "run",
    "scale_ends",
    "spatial_cuts",
    "subgraph",
    "trace",
]
