"""A study's plan: its cells (methods x layers or percents x modes x seeds x datasets) and each
cell's config, composed by Hydra from the same overrides a multirun job gets, so that a study in one
process and its cells as separate jobs (a multirun, a SLURM array) make identical cells."""

from __future__ import annotations

import copy
import logging

from hydra import compose
from omegaconf import DictConfig, OmegaConf

from roarkar.config.schema import CONF_DIR

log = logging.getLogger(__name__)


def _check_not_empty(study: DictConfig) -> None:
    """An empty list in the study would plan no cell for a reason nobody asked for, and an entry
    given twice would plan the same cells twice (the second a skip that looks like a result)."""
    from roarkar.protocols import PROTOCOLS

    if not study.get("seeds"):
        raise ValueError(
            f"study.seeds={study.get('seeds')} is empty: give at least one seed, e.g. "
            "study.seeds=[0]"
        )
    lists = [("study.seeds", study.get("seeds"))]
    for name, protocol in PROTOCOLS.items():
        part = study.get(name)
        for key in protocol.study_lists if part else ():
            if not part.get(key):
                raise ValueError(
                    f"study.{name}.{key}={part.get(key)} is empty: give at least one, or set "
                    f"study.{name}=null to leave the {name} protocol out"
                )
            lists.append((f"study.{name}.{key}", part.get(key)))
    for key, values in lists:
        if not OmegaConf.is_list(values):
            continue  # a mapping (study.layer.percents: one per mode) has unique keys
        seen = [str(v) for v in values]
        twice = sorted({v for v in seen if seen.count(v) > 1})
        if twice:
            raise ValueError(
                f"{key}={list(values)} lists {', '.join(twice)} more than once: give each once"
            )


_TAPS: dict[tuple[str, str, str], tuple[str, ...]] = {}


def model_taps(cfg: DictConfig) -> tuple[str, ...]:
    """The taps of the run's model (built once per process, untrained, to read them)."""
    from roarkar.models import build_model

    name = str(cfg.model.name)
    params = cfg.model.get("params")
    params = OmegaConf.to_container(params, resolve=True) if params else {}
    # modules tapped by hooks (+model.taps), else found from its graph
    taps = OmegaConf.select(cfg, "model.taps", default=None)
    taps = tuple(str(t) for t in taps) if taps else None
    key = (name, repr(sorted(params.items())), repr(taps))
    if key not in _TAPS:
        _TAPS[key] = build_model(name, 2, taps=taps, **params).taps
    return _TAPS[key]


def _check_method_params(part: DictConfig, protocol: str) -> None:
    """Each ``study.<protocol>.method_params`` entry names a method of the study and parameters
    that method accepts (a typo would otherwise be ignored, or fail deep in a cell)."""
    from roarkar.saliency import describe
    from roarkar.saliency.configs import method_config

    for method, given in (part.get("method_params") or {}).items():
        where = f"study.{protocol}.method_params.{method}"
        if method not in part.methods:
            raise ValueError(
                f"{where}: {method!r} is not one of the study's methods "
                f"({', '.join(map(str, part.methods))})"
            )
        name = str(method_config(method)["name"])
        accepted = describe(name).params
        unknown = sorted(set(given or {}) - set(accepted))
        if unknown:
            raise ValueError(
                f"{where}: method {name!r} has no parameter(s) {', '.join(unknown)}; it accepts "
                f"{', '.join(sorted(accepted))}"
            )


def _method_params(part: DictConfig, method: str) -> dict[str, object]:
    """``study.<protocol>.method_params.<method>`` as ``method.params.<key>`` settings: a study's
    own parameters for a method (cheaper sample counts on a CPU) without a new method config."""
    given = (part.get("method_params") or {}).get(method)
    if not given:
        return {}
    flat: dict[str, object] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        else:
            flat[prefix] = value

    walk("method.params", OmegaConf.to_container(given, resolve=True))
    return flat


def study_datasets(cfg: DictConfig, overrides: list[str] = ()) -> list[str | None]:
    """The datasets a study covers: ``study.datasets`` (a paper preset names three), restricted to
    the one a ``dataset=<name>`` override on the command line asks for (``experiment=table4
    dataset=imagenet`` plans ImageNet only); [None] (the run's own dataset) without a list."""
    listed = list(cfg.study.get("datasets") or [])
    chosen = [o.split("=", 1)[1] for o in overrides if o.startswith("dataset=")]
    if not listed:
        return [None]
    if not chosen:
        return listed
    wanted = [d for d in chosen[-1].split(",") if d]
    missing = [d for d in wanted if d not in listed]
    if missing:
        raise ValueError(
            f"dataset={chosen[-1]}: the study covers study.datasets={listed}; {', '.join(missing)} "
            "is not among them (set study.datasets to study another)"
        )
    return wanted


def plan(cfg: DictConfig, overrides: list[str] = ()) -> list[tuple[list[str], dict[str, object]]]:
    """One entry per cell of ``cfg.study``: the config-group overrides (dataset, method, protocol)
    and the scalar settings (``protocol.layer``, ``protocol.mode``, ``protocol.percent``, ``seed``).
    Each registered protocol with a ``study.<name>`` part expands it
    (:meth:`roarkar.protocols.Protocol.study_cells`; layers the model lacks are left out).

    ``study.datasets`` (a list of dataset config names) repeats the plan on each dataset, or on the
    one ``overrides`` name (:func:`study_datasets`); when it is absent or null the run's own
    ``dataset`` is used.
    """
    from roarkar.protocols import PROTOCOLS, StudyPart

    study = cfg.study
    datasets = study_datasets(cfg, overrides)
    _check_not_empty(study)
    taps = (lambda: model_taps(cfg)) if "model" in cfg else None
    model = str(cfg.model.name) if "model" in cfg else None
    parts = []  # (protocol, its study part, its cells of one seed): expanded once
    for name, protocol in PROTOCOLS.items():
        if study.get(name):
            _check_method_params(study[name], name)
            part = StudyPart(OmegaConf.to_container(study[name], resolve=True), model, taps)
            parts.append((name, study[name], protocol.study_cells(part)))
    cells = []
    for dataset in datasets:
        on = [f"dataset={dataset}"] if dataset else []
        for seed in study.seeds:
            for name, part, protocol_cells in parts:
                for method, scalars in protocol_cells:
                    scalars = scalars | {"seed": seed} | _method_params(part, method)
                    cells.append(([*on, f"method={method}", f"protocol={name}"], scalars))
    return cells


def as_overrides(groups: list[str], scalars: dict[str, object]) -> list[str]:
    """The command-line overrides that run this cell as its own job (``task=cell``)."""
    # ++ for a study's method parameters: the method's config need not name them already
    return [
        *groups,
        *(f"{'++' if k.startswith('method.params.') else ''}{k}={v}" for k, v in scalars.items()),
        "task=cell",
    ]


def override_key(override: str) -> str:
    """The key an override sets: ``+protocol.target=label`` -> ``protocol.target``."""
    return override.lstrip("+~").split("=", 1)[0]


def kept_overrides(
    overrides: list[str], groups: list[str], scalars: dict[str, object]
) -> list[str]:
    """The user's overrides that a cell keeps (the one rule for a study and a SLURM sweep): all but
    those setting a key the cell sets itself, or a ``protocol.<key>`` its protocol lacks."""
    taken = {override_key(g) for g in groups} | set(scalars) | {"task"}
    return [o for o in overrides if override_key(o) not in taken and _applies(o, groups)]


def _applies(override: str, groups: list[str]) -> bool:
    """A ``protocol.<key>`` override applies only to cells whose protocol has that key (a study
    mixing protocols passes ``protocol.target=label`` to its input cells, not its layer cells)."""
    key = override_key(override)
    if not key.startswith("protocol."):
        return True
    protocol = next(g.split("=", 1)[1] for g in groups if g.startswith("protocol="))
    return key.split(".")[1] in OmegaConf.load(CONF_DIR / "protocol" / f"{protocol}.yaml")


def cell_configs(cfg: DictConfig, overrides: list[str]) -> list[DictConfig]:
    """Compose every cell's config (Hydra must be initialised, as in @hydra.main or a test).

    The user's overrides are kept except those naming a key the cell sets itself (its dataset,
    method and protocol groups, ``protocol.layer/mode/percent``, ``seed``, ``task``). Hydra composes
    once per (dataset, method, protocol); the scalar settings are then set on copies, which gives the
    same config as composing ``as_overrides(...)`` for each cell, ten times faster.
    """
    from roarkar.config import register_configs

    register_configs()  # the schema; the study's methods may have no YAML (method=<name>)
    composed: dict[tuple[str, ...], DictConfig] = {}
    configs = []
    left_out: set[str] = set()
    for groups, scalars in plan(cfg, overrides):
        key = tuple(groups)
        if key not in composed:
            base = kept_overrides(overrides, groups, scalars)
            composed[key] = compose(config_name="config", overrides=base + groups + ["task=cell"])
        if not _has_relevance(composed[key]):
            left_out.add(str(composed[key].dataset.name))
            continue
        cell = copy.deepcopy(composed[key])
        for dotted, value in scalars.items():
            OmegaConf.update(
                cell, dotted, value, merge=False, force_add=dotted.startswith("method.params.")
            )
        configs.append(cell)
    for name in sorted(left_out):
        log.warning(
            "ground_truth left out of the study on %s: that dataset has no relevance maps (only "
            "the embedded synthetic sets have a ground truth)",
            name,
        )
    return configs


def _has_relevance(cell: DictConfig) -> bool:
    """False for a ground_truth cell on data without relevance maps (a real image layout; a
    shards folder may hold them, and the method says so if it does not)."""
    kind = str(cell.dataset.kind)
    return str(cell.method.name) != "ground_truth" or kind in ("synthetic", "shards")
