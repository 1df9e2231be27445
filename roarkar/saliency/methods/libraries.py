"""Saliency libraries by name, as optional extras: captum (``pip install 'roarkar[captum]'``) and
pytorch-grad-cam (``'roarkar[gradcam]'``).

``method=captum method.params.attr=<any captum.attr class>``: input attributions ``[B, C, H, W]``
reduced over the channels (``reduce``, default ``abs_max``), or, for a ``Layer*`` class, its
attribution at tap ``layer`` (default the model's last tap) summed over the channels and upsampled
bilinearly. ``method=gradcam_lib method.params.cam=<any pytorch-grad-cam CAM>``: the library's map at
tap ``layer`` (default the last tap), as it returns it (ReLU, min-max scaled per image, resized to
the input). ``kwargs`` go to the class's constructor or its ``attribute`` / ``__call__``, by
name (``baselines``, ``n_steps``, ``sliding_window_shapes``, ``strides``, ``eigen_smooth``, ...;
lists become tuples, a number ``baselines`` of a ``*Shap`` class a baseline image of that value).
A stochastic captum class runs one image at a time, each with its own seed, so an image's map does
not depend on the rest of its batch. A cell's identity hashes the class name, parameters and the
library's installed version (:data:`roarkar.identity.METHOD_LIBRARIES`).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import io
import warnings
from collections.abc import Callable, Mapping
from contextlib import redirect_stderr
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from roarkar.identity import METHOD_LIBRARIES
from roarkar.models.taps import TappedNet
from roarkar.registry import Registry
from roarkar.saliency.base import SaliencyMethod, resize_map
from roarkar.saliency.methods.external import given_or_predicted, seeded_rng
from roarkar.saliency.methods.gradients import REDUCTIONS, reduce_channels
from roarkar.saliency.methods.seeds import image_seeds
from roarkar.saliency.registry import register

__all__ = ["CaptumMethod", "GradCamLibMethod", "TapSplit", "library_class"]

#: registry name -> (the module the classes are looked up in, the pip extra that installs it)
MODULES = {"captum": ("captum.attr", "captum"), "gradcam_lib": ("pytorch_grad_cam", "gradcam")}
#: captum classes that draw random numbers: run one image at a time, each with its own seed
STOCHASTIC = frozenset(
    {"GradientShap", "NoiseTunnel", "KernelShap", "Lime", "ShapleyValueSampling"}
)
#: captum classes whose hooks need each activation module called once per forward pass
ONCE_PER_PASS = frozenset({"DeepLift", "DeepLiftShap", "LRP", "LayerDeepLift", "LayerDeepLiftShap"})


def library_class(method: str, name: str, key: str) -> type:
    """Class ``name`` of registry method ``method``'s library (``captum.attr.X`` or a bare ``X``);
    a missing library names its extra, a missing class the library's classes."""
    module_name, extra = MODULES[method]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"method={method} needs {METHOD_LIBRARIES[method]}: pip install 'roarkar[{extra}]' "
            f"({exc})"
        ) from exc
    classes: Registry[type] = Registry(f"{module_name} class", key=f"method.params.{key}")
    for class_name, value in sorted(vars(module).items()):
        if inspect.isclass(value) and class_name[0].isupper():
            classes.register(class_name, value)
    return classes.get(str(name).rpartition(".")[2])  # unknown: the nearest and every class named


def split_kwargs(
    cls: type, call: Callable[..., Any], kwargs: Mapping[str, Any], key: str
) -> tuple[dict, dict]:
    """``kwargs`` split into the constructor's and the call's, by their parameter names; a name
    neither takes is a TypeError listing both."""
    init_names = set(inspect.signature(cls.__init__).parameters) - {"self"}
    call_names = set(inspect.signature(call).parameters) - {"self"}
    unknown = sorted(set(kwargs) - init_names - call_names)
    if unknown:
        raise TypeError(
            f"method.params.{key}: {cls.__name__} takes no argument(s) {', '.join(unknown)}; its "
            f"constructor takes {', '.join(sorted(init_names))}, its {call.__name__} "
            f"{', '.join(sorted(call_names))}"
        )
    plain = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return (
        {k: v for k, v in plain.items() if k in init_names},
        {k: v for k, v in plain.items() if k in call_names and k not in init_names},
    )


def check_required(fn: Callable[..., Any], given: set[str], what: str, key: str) -> None:
    """A TypeError naming the required arguments of ``fn`` that ``given`` lacks."""
    missing = [
        p.name
        for p in list(inspect.signature(fn).parameters.values())
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in given | {"self"}
    ]
    if missing:
        raise TypeError(
            f"{what} needs argument(s) {', '.join(missing)} that it did not get: set "
            + ", ".join(f"method.params.kwargs.{m}" for m in missing)
            + f" ({key})"
        )


def unshared(net: nn.Module) -> nn.Module:
    """``net`` traced with every parameter-free module that its forward calls more than once (a
    ResNet block's ReLU) replaced by one out-of-place copy per call, the other modules (the
    weights) shared; DeepLift's and LRP's hooks need one call per module. ``net`` itself when it
    does not trace."""
    try:
        traced = torch.fx.symbolic_trace(net)
    except Exception:  # data-dependent control flow: captum will say what it cannot do
        return net
    calls: dict[str, int] = {}
    for node in traced.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    for index, node in enumerate(list(traced.graph.nodes)):
        module = traced.get_submodule(node.target) if node.op == "call_module" else None
        if module is None or calls[node.target] < 2 or any(True for _ in module.parameters()):
            continue
        clone = copy.deepcopy(module)
        if hasattr(clone, "inplace"):
            clone.inplace = False
        name = f"unshared_{index}"
        traced.add_submodule(name, clone)
        node.target = name
    traced.recompile()
    return traced


class TapSplit(nn.Module):
    """``model`` cut at ``tap`` with an identity module there (``at_tap``), so that a library can
    hook the tap's activation as a module's output; the activation carries a gradient even when
    the input does not (frozen weights)."""

    def __init__(self, model: TappedNet, tap: str):
        super().__init__()
        self.model, self.tap, self.at_tap = model, tap, nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        act = self.model.forward_to(x, self.tap).post
        if not act.requires_grad:
            act = act.detach().requires_grad_(True)
        return self.model.forward_from(self.at_tap(act), self.tap)


class _LibraryMethod(SaliencyMethod):
    """What both adaptors share: the class from the library, its kwargs split and checked."""

    label_param: ClassVar[str]

    def _prepare(self, name: str, kwargs: Mapping[str, Any] | None, call: str) -> None:
        self.cls = library_class(self.name_for_errors, name, self.label_param)
        self.init_kwargs, self.call_kwargs = split_kwargs(
            self.cls, getattr(self.cls, call), dict(kwargs or {}), "kwargs"
        )


@register("captum", label="Captum", reference="Kokhlikyan et al. 2020 (captum.attr)")
class CaptumMethod(_LibraryMethod):
    """Any ``captum.attr`` class (module docstring)."""

    label_param: ClassVar[str] = "attr"
    name_for_errors = "captum"

    def __init__(
        self,
        model: nn.Module,
        *,
        attr: str = "Saliency",
        kwargs: Mapping[str, Any] | None = None,
        layer: str = "last",
        reduce: str = "abs_max",
        label: str | None = None,
        batch_size: int | None = None,
    ):
        super().__init__(model, batch_size=batch_size)
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce={reduce!r}: expected one of {', '.join(REDUCTIONS)}")
        self.attr, self.reduce, self.label = attr, reduce, label
        self._prepare(attr, kwargs, "attribute")
        self.is_layer = self.cls.__name__.startswith("Layer")
        self.layer = self.model.resolve_tap(layer)
        self.forward_module: nn.Module = (
            TapSplit(self.model, self.layer) if self.is_layer else self.model
        )
        if self.cls.__name__ in ONCE_PER_PASS and not self.is_layer:
            self.forward_module = unshared(self.model.net)
        ctor = ["forward_func", "model"] + (["layer"] if self.is_layer else [])
        what = f"captum {self.cls.__name__}"
        check_required(self.cls.__init__, set(self.init_kwargs) | set(ctor), what, "constructor")
        given = set(self.call_kwargs) | {"inputs", "target"}
        check_required(self.cls.attribute, given, f"{what}.attribute", "attribute")
        self.stochastic = self.cls.__name__ in STOCHASTIC

    def _build(self) -> Any:
        if self.is_layer:
            return self.cls(self.forward_module, self.forward_module.at_tap, **self.init_kwargs)
        return self.cls(self.forward_module, **self.init_kwargs)

    def _call_kwargs(self, x: Tensor) -> dict:
        kwargs = dict(self.call_kwargs)
        base = kwargs.get("baselines")
        if isinstance(base, int | float) and self.cls.__name__.endswith("Shap"):
            kwargs["baselines"] = torch.full(
                (2, *x.shape[1:]), float(base), dtype=x.dtype, device=x.device
            )
        return kwargs

    def _attribute(self, x: Tensor, targets: Tensor) -> Tensor:
        with warnings.catch_warnings(), torch.enable_grad():
            warnings.simplefilter("ignore")  # captum warns about frozen weights and hooks
            out = self._build().attribute(
                x.detach().clone().requires_grad_(True), target=targets, **self._call_kwargs(x)
            )
        return (out[0] if isinstance(out, tuple) else out).detach()

    def _saliency(self, images, targets, *, relevance, generator):
        targets = given_or_predicted(self.model, images, targets)
        if self.stochastic:
            seeds = image_seeds(images, generator)
            parts = []
            for i, seed in enumerate(seeds):
                one = images[i : i + 1]
                with seeded_rng(one, torch.Generator().manual_seed(seed)):
                    parts.append(self._attribute(one, targets[i : i + 1]))
            attr = torch.cat(parts)
        else:
            with seeded_rng(images, generator):
                attr = self._attribute(images, targets)
        if self.is_layer:
            return resize_map(attr.sum(dim=1), tuple(images.shape[-2:]), mode="bilinear")
        return reduce_channels(attr, self.reduce)


@register(
    "gradcam_lib",
    label="pytorch-grad-cam",
    reference="Gildenblat et al., pytorch-grad-cam (jacobgil/pytorch-grad-cam)",
)
class GradCamLibMethod(_LibraryMethod):
    """Any pytorch-grad-cam CAM at tap ``layer`` (module docstring)."""

    kind: ClassVar[str] = "cam"
    label_param: ClassVar[str] = "cam"
    name_for_errors = "gradcam_lib"

    def __init__(
        self,
        model: nn.Module,
        *,
        cam: str = "GradCAM",
        kwargs: Mapping[str, Any] | None = None,
        layer: str = "last",
        label: str | None = None,
        batch_size: int | None = None,
    ):
        super().__init__(model, batch_size=batch_size)
        self.cam, self.label = cam, label
        self._prepare(cam, kwargs, "__call__")
        self.layer = self.model.resolve_tap(layer)
        self.split = TapSplit(self.model, self.layer)
        given = set(self.init_kwargs) | {"model", "target_layers"}
        check_required(
            self.cls.__init__, given, f"pytorch-grad-cam {self.cls.__name__}", "constructor"
        )

    def _saliency(self, images, targets, *, relevance, generator):
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        targets = given_or_predicted(self.model, images, targets)
        classes = [ClassifierOutputTarget(int(t)) for t in targets]
        # ScoreCAM and AblationCAM draw a progress bar per call: on stderr, kept out of the logs
        with (
            seeded_rng(images, generator),
            warnings.catch_warnings(),
            redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            with self.cls(self.split, [self.split.at_tap], **self.init_kwargs) as cam:
                maps = cam(images.detach().clone(), classes, **self.call_kwargs)
        return torch.as_tensor(maps, device=images.device)
