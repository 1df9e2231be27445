"""The `roarkar` command: a thin Hydra entry point around :func:`run`."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from roarkar.config.schema import CONF_DIR as CONF_PATH

CONF_DIR = str(CONF_PATH)  # Hydra takes the config directory as a string

TASKS = (
    "auto",
    "study",
    "cell",
    "base",
    "tables",
    "plan",
    "status",
    "sbatch",
    "precompute",
    "export_maps",
    "perturbation",
    "leak",
)


def resolve_task(cfg: DictConfig) -> str:
    """``auto`` is a whole study in a single run and one cell per job in a multirun."""
    task = str(cfg.task)
    if task not in TASKS:
        raise ValueError(f"task={task!r}: expected one of {', '.join(TASKS)}")
    if task != "auto":
        return task
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    return "cell" if multirun else "study"


def run(cfg: DictConfig, overrides: list[str] | None = None) -> dict:
    """Do what ``cfg.task`` says; ``overrides`` are the command-line overrides (for the study)."""
    from roarkar.protocols.cell import run_base, run_cell, run_precompute
    from roarkar.saliency.configs import pin_targets
    from roarkar.status import run_plan, run_status
    from roarkar.study import run_study, run_tables

    task = resolve_task(cfg)
    if overrides is None:
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    overrides = pin_targets(cfg, overrides)  # an external method's file, from where the user ran
    if task == "study":
        return run_study(cfg, overrides)
    if task == "plan":
        return run_plan(cfg, overrides)
    if task == "status":
        return run_status(cfg, overrides)
    if task == "precompute":
        result = run_precompute(cfg)
        print(
            f"saliency maps, part {result['part']} of {result['parts']}: {result['directory']}",
            flush=True,
        )
        return result
    if task == "export_maps":
        from roarkar.protocols.export import run_export_maps

        result = run_export_maps(cfg)
        print(f"saliency maps ({result['counts']}): {result['directory']}", flush=True)
        return result
    if task == "perturbation":
        from roarkar.metrics.run import run_perturbation

        return run_perturbation(cfg)
    if task == "leak":
        from roarkar.leak import run_leak

        return run_leak(cfg, overrides)
    if task == "sbatch":
        from roarkar.cluster.sbatch import run_sbatch_dry_run

        return run_sbatch_dry_run(cfg, overrides)
    if task == "cell":
        record = run_cell(cfg)
        acc = record.get("accuracy")
        state = "skipped (finished)" if record.get("skipped") else record["status"]
        print(
            f"cell {record['cell']}: accuracy {acc if acc is None else round(acc, 4)} [{state}]",
            flush=True,
        )
        return record
    if task == "base":
        result = run_base(cfg)
        print(
            f"base model {result['identity']}: held-out accuracy {result['accuracy']:.4f}",
            flush=True,
        )
        return result
    return run_tables(cfg)


def _known_errors() -> tuple[type[BaseException], ...]:
    """Errors roarkar raises on bad input, each naming its file, key or value: printed as one
    line, no traceback. Anything else is a bug and keeps its traceback."""
    from roarkar.data.shards import CorruptShardError
    from roarkar.training.trainer import NonFiniteLossError

    return (ValueError, OSError, CorruptShardError, NonFiniteLossError)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        result = run(cfg)
    except _known_errors() as exc:
        from roarkar.entry import exit_known_error

        exit_known_error("roarkar", exc)
    failed = isinstance(result, dict) and (result.get("failed") or result.get("status") == "failed")
    # A single run reports a failed cell in its exit status. A multirun job returns normally: the
    # failure is in the cell's result.json, the sweep's other jobs go on, and submitit writes its
    # result file (without one, and without sacct, `roarkar -m` on SLURM waits forever).
    if failed and HydraConfig.get().mode != RunMode.MULTIRUN:
        sys.exit(1)


def hydra_dir(results: str) -> str:
    """Where Hydra keeps a run's config and log: ``<results>/hydra`` when that can be written,
    else a temporary folder, so a read-only results tree can still be inspected
    (``task=status``, ``task=plan``) instead of failing on Hydra's run folder."""
    path = Path(results).expanduser()
    probe = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    if os.access(probe, os.W_OK):
        return str(path / "hydra")
    return str(Path(tempfile.gettempdir()) / f"roarkar-hydra-{os.getuid()}")


def register_resolvers() -> None:
    """The config's own resolver (``${roarkar_hydra_dir:...}`` in conf/config.yaml)."""
    OmegaConf.register_new_resolver("roarkar_hydra_dir", hydra_dir, replace=True)


def main() -> None:
    """Console script entry point."""
    from roarkar.config import register_configs
    from roarkar.config.overrides import check_override_keys, schema_key_overrides

    register_resolvers()
    register_configs()  # the schema, and method=<name> without a YAML (a submitit job inherits them)
    sys.argv[1:] = schema_key_overrides(sys.argv[1:])  # dataset.workers=16 on every preset
    check_override_keys(CONF_DIR, sys.argv[1:])  # a key the config lacks: one line, nearest keys
    _hydra_main()


if __name__ == "__main__":  # python -m: the same process settings as the console script
    from roarkar.entry import roarkar

    roarkar()
