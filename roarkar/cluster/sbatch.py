"""The sbatch script Hydra's submitit launcher would submit, rendered without SLURM.

:func:`render` turns a ``hydra.launcher`` config (``conf/hydra/launcher/slurm.yaml`` or any
``submitit_slurm`` config) into the exact script submitit writes for a job array of ``num_tasks``
tasks: the launcher's parameters go through the same renaming as ``AutoExecutor`` and
``SlurmExecutor`` (``timeout_min`` -> ``--time``, ``mem_gb`` -> ``--mem``, ``tasks_per_node`` ->
``--ntasks-per-node``, ...) and then through submitit's own ``_make_sbatch_string``.

:func:`run_sbatch_dry_run` (``roarkar task=sbatch ...``) prints, for the cells of the current study
plan, the number of array tasks, that script, and the overrides each array task runs.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

LAUNCHER_PRESET = Path(__file__).resolve().parents[1] / "conf" / "hydra" / "launcher" / "slurm.yaml"

# keys of hydra.launcher that are not sbatch parameters: they configure the launcher or executor
_NOT_SBATCH = {"_target_", "submitit_folder", "max_num_timeout"}


def _dry_run_executor():
    """submitit's SlurmExecutor, minus its check that ``srun`` exists."""
    from submitit.slurm.slurm import SlurmExecutor

    class DryRunSlurmExecutor(SlurmExecutor):
        @classmethod
        def name(cls) -> str:
            return "slurm"

        @classmethod
        def affinity(cls) -> int:
            return 1

    return DryRunSlurmExecutor


def _as_dict(launcher: DictConfig | dict) -> dict[str, Any]:
    if OmegaConf.is_config(launcher):
        return OmegaConf.to_container(launcher, resolve=True)
    return dict(launcher)


def render(
    launcher: DictConfig | dict,
    job_name: str | None = None,
    folder: str | Path | None = None,
    *,
    num_tasks: int = 1,
    python: str | None = None,
) -> str:
    """The sbatch script submitit submits for ``num_tasks`` jobs with these launcher settings.

    ``launcher`` is a ``hydra.launcher`` node (``submitit_slurm`` fields); ``job_name`` and
    ``folder`` replace its ``name`` and ``submitit_folder`` when given. As in submitit, more than
    one task gives a job array (``#SBATCH --array=0-<N-1>%<min(N, array_parallelism)>``) with logs
    ``<folder>/%A_%a_0_log.out``; a single task gives a plain job. ``python`` is the interpreter the
    tasks run (default: this one, as submitit does).
    """
    from submitit import AutoExecutor

    if num_tasks < 1:
        raise ValueError(f"num_tasks={num_tasks}: a job array needs at least one task")
    params = _as_dict(launcher)
    folder = str(folder if folder is not None else params["submitit_folder"])
    max_num_timeout = int(params.get("max_num_timeout") or 0)
    if job_name is not None:
        params["name"] = job_name
    params = {k: v for k, v in params.items() if k not in _NOT_SBATCH and v is not None}

    executor = _dry_run_executor()(folder, max_num_timeout=max_num_timeout)
    if python is not None:
        executor.python = python
    # AutoExecutor: generic names (timeout_min, mem_gb, ...) are converted by the executor, the
    # others are slurm-specific and passed through; update_parameters validates them all
    generics = set(AutoExecutor._typed_parameters())
    converted = executor._convert_parameters({k: v for k, v in params.items() if k in generics})
    converted |= {k: v for k, v in params.items() if k not in generics}
    executor.update_parameters(**converted)
    if num_tasks > 1:  # SlurmExecutor._internal_process_submissions: arrays only for > 1 job
        executor.parameters["map_count"] = num_tasks
    return executor._make_submission_file_text(executor._submitit_command_str, uid="dry-run")


def _fallback_launcher(cfg: DictConfig) -> DictConfig:
    """``conf/hydra/launcher/slurm.yaml`` over submitit_slurm's defaults, outside Hydra's launcher
    (its ``${hydra.*}`` interpolations resolve against this run's Hydra config when there is one)."""
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

    preset = OmegaConf.load(LAUNCHER_PRESET)
    preset.pop("defaults", None)
    launcher = OmegaConf.merge(OmegaConf.structured(SlurmQueueConf), preset)
    sweep_dir = f"{cfg.paths.results}/hydra/multirun/{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    job_name = "roarkar"
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            hydra = HydraConfig.get()
            sweep_dir, job_name = str(hydra.sweep.dir), str(hydra.job.name)
    except ValueError:  # Hydra's config holds unresolvable values: keep the defaults above
        pass
    root = OmegaConf.create({"hydra": {"sweep": {"dir": sweep_dir}, "job": {"name": job_name}}})
    root.hydra.launcher = launcher
    return root.hydra.launcher


def launcher_config(cfg: DictConfig) -> tuple[DictConfig, str]:
    """The SLURM launcher settings for ``cfg`` and where they came from.

    In order: ``cfg.hydra.launcher`` (a config composed with ``return_hydra_config=True``), this
    run's Hydra launcher when it is a SLURM one (``roarkar task=sbatch hydra/launcher=slurm``),
    else the ``slurm`` preset merged with submitit_slurm's defaults.
    """
    launcher = OmegaConf.select(cfg, "hydra.launcher")
    if launcher is not None:
        return launcher, "cfg.hydra.launcher"
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        launcher = HydraConfig.get().launcher
        if str(launcher.get("_target_", "")).endswith("SlurmLauncher"):
            return launcher, "this run's hydra/launcher"
    return _fallback_launcher(cfg), f"{LAUNCHER_PRESET.relative_to(LAUNCHER_PRESET.parents[3])}"


def run_sbatch_dry_run(cfg: DictConfig, overrides: list[str]) -> dict:
    """Print what a SLURM submission of the current study would be, without SLURM: the number of
    array tasks (one per cell of the plan), the sbatch script submitit writes for the array, and
    the overrides each array task runs (task ``i`` runs line ``i``). Nothing is submitted or written.
    """
    from roarkar.cluster.cells import cell_override_lines

    lines = [shlex.join(line) for line in cell_override_lines(cfg, overrides)]
    if not lines:
        raise ValueError("the study plan is empty: set study.layer and/or study.input")
    launcher, source = launcher_config(cfg)
    script = render(launcher, num_tasks=len(lines))
    params = _as_dict(launcher)
    parallel = min(len(lines), int(params.get("array_parallelism") or 256))
    width = len(str(len(lines) - 1))
    text = "\n".join(
        [
            f"{len(lines)} array tasks (one cell each), at most {parallel} running at once; "
            f"launcher settings from {source}",
            f"requeues after a time limit: {params.get('max_num_timeout')} "
            "(preemptions requeue without limit; cells resume from their last epoch)",
            f"logs: {Path(str(params['submitit_folder'])).absolute()} (%j = <array id>_<task id>)",
            "",
            "# ---- sbatch script (submitit) ----",
            script.rstrip("\n"),
            "",
            "# ---- per-task overrides (array task i runs line i) ----",
            *(f"{i:>{width}}: {line}" for i, line in enumerate(lines)),
            "",
            "# plain sbatch instead of Hydra's launcher (slurm/README.md):",
            f"#   python -m roarkar.cluster.cells cells.txt {shlex.join(_user(overrides))}".rstrip(),
            f"#   sbatch --array=0-{len(lines) - 1}%{parallel} slurm/array.sbatch cells.txt",
        ]
    )
    print(text, flush=True)
    return {"tasks": len(lines), "script": script, "lines": lines, "text": text}


def _user(overrides: list[str]) -> list[str]:
    """The overrides to hand to the cells helper: not ``task=`` and not Hydra's own."""
    from roarkar.cluster.cells import is_hydra_override

    return [o for o in overrides if not is_hydra_override(o) and o.split("=", 1)[0] != "task"]
