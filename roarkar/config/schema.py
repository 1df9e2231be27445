"""The config's schema: one dataclass per node, registered in Hydra's ConfigStore by
:func:`roarkar.config.store.register_configs`, and the one reader of what enters an identity.

Where a value lives (each written once): the group presets (``conf/trainer``, ``conf/protocol``,
``conf/paths``, ``conf/study``) hold their values and the schema their types (``MISSING``); the
top-level scalars, ``loader``, ``precompute``, ``trainer.lr_scale`` and ``trainer.log_every`` have
their defaults here; the ``perturbation`` block's are :class:`roarkar.metrics.run_settings.RunSettings`'
and :class:`roarkar.metrics.settings.Settings`'. ``dataset``, ``model`` and ``method`` vary by
preset and kind, and ``protocol`` may carry a key of the other protocol (an experiment sets it for
its cells): open nodes here, their common keys typed by :mod:`roarkar.config.nodes`.

A field whose value never changes a result carries ``metadata={"identity": False}``
(:data:`NOT_IDENTITY`); :func:`not_in_identity` lists them, and ``roarkar.identity`` builds its one
rule from it. Numeric fields that presets write as ints and floats alike are typed ``Any``: a
float schema would turn ``0`` into ``0.0`` and so change the identities of finished results.
Bottom layer: no roarkar imports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional  # noqa: UP035 - OmegaConf 2.3 reads typing's forms

from omegaconf import MISSING

__all__ = [
    "CONF_DIR",
    "NOT_IDENTITY",
    "DatasetKeys",
    "InputStudy",
    "LayerStudy",
    "LoaderConfig",
    "PathsConfig",
    "PrecomputeConfig",
    "RoarkarConfig",
    "Stage",
    "StageEpochs",
    "StageScales",
    "StudyConfig",
    "TrainerConfig",
    "not_in_identity",
]

#: the packaged presets (``roarkar/conf``, a link to the checkout's ``conf/``): Hydra's config
#: directory, and where code outside a Hydra run reads a preset
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

#: field metadata of a setting that says where or how fast, not what: never part of an identity
NOT_IDENTITY = {"identity": False}

STAGES = ("base", "layer", "input")


def not_in_identity(*schemas: type) -> frozenset[str]:
    """The names of the fields of ``schemas`` (dataclasses) marked ``identity: False``."""
    return frozenset(
        f.name for schema in schemas for f in fields(schema) if not f.metadata.get("identity", True)
    )


@dataclass
class StageEpochs:
    """``trainer.epochs``: epochs of each stage."""

    base: int = MISSING  # the base model
    layer: int = MISSING  # fine-tuning after a masked tap
    input: int = MISSING  # from scratch on masked images


@dataclass
class StageScales:
    """``trainer.lr_scale``: learning-rate multiplier of each stage."""

    base: float = 1.0
    layer: float = 1.0
    input: float = 1.0


@dataclass(frozen=True)
class Stage:
    """One stage's recipe (base, layer or input), read from ``trainer`` in one place."""

    name: str
    epochs: int
    lr_scale: float  # multiplies the recipe's learning rate
    recipe: dict  # what of the trainer enters the stage's identity (this stage's epochs, lr_scale)


@dataclass
class TrainerConfig:
    """``trainer``: the SGD recipe (values in ``conf/trainer/<preset>.yaml``)."""

    batch_size: int = MISSING  # global: split over the processes of a DDP run
    lr: float = MISSING  # at lr_reference_batch; scaled linearly with the global batch
    lr_reference_batch: int = MISSING
    momentum: float = MISSING
    weight_decay: float = MISSING
    nesterov: bool = MISSING
    schedule: str = MISSING  # step | cosine | constant
    milestones: List[float] = MISSING  # noqa: UP006
    gamma: float = MISSING
    warmup_epochs: Any = MISSING
    label_smoothing: float = MISSING
    amp: str = MISSING  # auto | off | bf16 | fp16
    channels_last: Any = MISSING  # auto | true | false
    eval_batch_size: int = field(default=MISSING, metadata=NOT_IDENTITY)
    progress: bool = field(default=MISSING, metadata=NOT_IDENTITY)
    logger: str = field(default=MISSING, metadata=NOT_IDENTITY)  # csv | tensorboard | none
    log_every: int = field(default=50, metadata=NOT_IDENTITY)  # steps between loss reads
    epochs: StageEpochs = field(default_factory=StageEpochs)
    lr_scale: StageScales = field(default_factory=StageScales)

    def recipe(self) -> dict:
        """The SGD settings common to every stage (``TrainerSettings``' keys)."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("epochs", "lr_scale")
        }

    def stage(self, name: str) -> Stage:
        """The recipe of stage ``name``: its epochs, learning-rate scale and identity."""
        if name not in STAGES:
            raise ValueError(
                f"trainer.epochs has no entry {name!r}: expected keys {', '.join(STAGES)}"
            )
        epochs, scale = int(getattr(self.epochs, name)), float(getattr(self.lr_scale, name))
        # a cell trained for no epoch is its untrained start, recorded as if it meant something;
        # an untrained base model (0) is allowed, and every table then says so loudly
        if epochs < (0 if name == "base" else 1):
            least = "0 (an untrained base model, flagged in every table)" if name == "base" else "1"
            raise ValueError(f"trainer.epochs.{name}={epochs}: expected at least {least}")
        relevant = {k: v for k, v in self.recipe().items() if k not in _TRAINER_NOT_IDENTITY}
        return Stage(name, epochs, scale, relevant | {"epochs": epochs, "lr_scale": scale})


_TRAINER_NOT_IDENTITY = not_in_identity(TrainerConfig)


def _plain(value: Any) -> Any:
    """A fresh plain copy of a field's value (lists and nested dataclasses)."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return asdict(value) if hasattr(value, "__dataclass_fields__") else value


@dataclass
class LayerStudy:
    """``study.layer``: the layer protocol's part of a study."""

    methods: List[str] = MISSING  # noqa: UP006
    layers: List[str] = MISSING  # noqa: UP006
    modes: List[str] = MISSING  # noqa: UP006
    percents: Dict[str, Any] = MISSING  # noqa: UP006 - per mode
    method_params: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006 - per method


@dataclass
class InputStudy:
    """``study.input``: the input protocol's part of a study."""

    methods: List[str] = MISSING  # noqa: UP006
    percents: List[Any] = MISSING  # noqa: UP006
    modes: List[str] = MISSING  # noqa: UP006
    method_params: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006 - per method


@dataclass
class StudyConfig:
    """``study``: its cells (values in ``conf/study/<preset>.yaml``)."""

    seeds: List[int] = MISSING  # noqa: UP006
    datasets: Optional[List[str]] = None  # noqa: UP006, UP045 - null: the run's own dataset
    # cells run at once, each in its own process with cores / workers torch threads (1: in this
    # process, one after another); a cell's result does not depend on it
    workers: int = field(default=1, metadata=NOT_IDENTITY)
    layer: Optional[LayerStudy] = None  # noqa: UP045
    input: Optional[InputStudy] = None  # noqa: UP045


@dataclass
class LoaderConfig:
    """``loader``: data in memory when it fits, else streamed from the shards. None of these
    change a result (a streamed epoch's batches depend on seed, epoch, pool and world size only)."""

    in_memory: Any = "auto"  # auto | true | false
    memory_limit_gb: float = 8  # auto: in memory when both splits' images take less than this
    pool: int = 4  # streaming: shards whose samples are shuffled together (a window)
    # streaming: background reader processes per rank; auto: 0 on CPU, on CUDA this rank's share
    # of the cores (at most 8)
    workers: Any = "auto"
    prefetch: int = 2  # streaming: batches each worker prepares ahead


@dataclass
class PrecomputeConfig:
    """``precompute``: the input protocol's saliency maps, one image shard at a time (resumable;
    shared out): ``task=precompute`` computes the shards p with p % parts == part."""

    part: int = 0
    parts: int = 1


@dataclass
class ExportConfig:
    """``export``: where ``task=export_maps`` writes a method's maps (None:
    ``<paths.results>/maps/<method id>-<id8>``), the format ``method=precomputed`` reads."""

    path: Optional[str] = None  # noqa: UP045


@dataclass
class PathsConfig:
    """``paths``: where results and data go (``conf/paths/default.yaml``; nothing is written elsewhere)."""

    results: str = MISSING
    data: str = MISSING


@dataclass
class DatasetKeys:
    """The keys every dataset kind shares (``dataset`` itself is an open node: each kind has its
    own keys, and the whole node enters identities as written). A field with a default can be set
    on every preset as ``dataset.<key>=<value>``, whether or not the preset writes it
    (:func:`roarkar.config.overrides.schema_key_overrides`): a preset leaves out the keys it does
    not change, so its identities stay as they were."""

    name: str = MISSING
    kind: str = MISSING
    image_size: int = MISSING
    num_classes: Optional[int] = None  # noqa: UP045
    train_size: Optional[int] = None  # noqa: UP045 - null: every image; a number: a seeded subset
    val_size: Optional[int] = None  # noqa: UP045
    augment: str = "crop_flip"
    root: Optional[str] = field(default=None, metadata=NOT_IDENTITY)  # noqa: UP045 - real data
    # shard size and file lists decide what is stored (the shard directory's name), not a result
    shard_size: Optional[int] = field(default=None, metadata=NOT_IDENTITY)  # noqa: UP045
    train_list: Optional[str] = field(default=None, metadata=NOT_IDENTITY)  # noqa: UP045
    val_list: Optional[str] = field(default=None, metadata=NOT_IDENTITY)  # noqa: UP045
    num_workers: Optional[int] = field(default=None, metadata=NOT_IDENTITY)  # noqa: UP045
    # published split sizes, for the dry run's cost estimate only
    nominal_train_size: Optional[int] = field(default=None, metadata=NOT_IDENTITY)  # noqa: UP045
    nominal_val_size: Optional[int] = field(default=None, metadata=NOT_IDENTITY)  # noqa: UP045
    # how the source tree is checked, not what the images are (roarkar.data.fingerprint)
    verify: str = field(default="stat", metadata=NOT_IDENTITY)  # stat | content
    allow_outside_root: bool = field(default=True, metadata=NOT_IDENTITY)
    allow_class_mismatch: bool = field(default=False, metadata=NOT_IDENTITY)
    # how real images are converted (roarkar.data.materialize): processes (null: one; the shards
    # are byte-identical for any number, so no identity), and an unreadable image left out (listed
    # in skipped.json) instead of an error, which changes the data: it enters a cell's identity
    # when set (identity.NAMING_KEYS), not the shard directory's name
    workers: Optional[int] = field(default=None, metadata=NOT_IDENTITY)  # noqa: UP045
    skip_corrupt: bool = False
    # normalisation fixed by the config (one value or one per channel; null: the train split's)
    mean: Any = None
    std: Any = None
    rebuild: Any = None  # a new value converts a changed source tree into new shards


@dataclass
class RoarkarConfig:
    """The whole config (``conf/config.yaml`` names its groups)."""

    # auto: a single run does the whole study; in a multirun (-m) each job runs one cell.
    # study | cell | base (train the base model only) | tables (aggregate paths.results)
    # plan (dry run: list the cells of the study, their state and cost, run nothing)
    # status (cells done, running, failed, missing; GPU-hours spent and the estimate to finish)
    # sbatch (dry run: the SLURM array script and per-task overrides a cluster sweep would submit)
    # precompute (input protocol: this worker's share of the saliency maps)
    # perturbation (metrics without retraining: AOPC, AFOC, n_MoRF/n_LeRF, Delta, ROAD)
    task: str = "auto"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    claim_ttl_s: float = 3600  # a running cell's claim expires this long after its last heartbeat
    paths: PathsConfig = field(default_factory=PathsConfig)
    dataset: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    model: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    method: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    # open: an experiment may set a key of the other protocol (nielsen2022: protocol.replacement)
    protocol: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    study: StudyConfig = field(default_factory=StudyConfig)
    precompute: PrecomputeConfig = field(default_factory=PrecomputeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    # task=perturbation: RunSettings' and Settings' keys, with their defaults (register_configs
    # puts roarkar.metrics.run_settings.config_schema() here)
    perturbation: Any = field(default_factory=dict)
