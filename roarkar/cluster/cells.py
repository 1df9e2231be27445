"""One override line per cell of a study plan, for job arrays that index them by task id.

``python -m roarkar.cluster.cells OUTFILE [--todo] <overrides...>`` writes the file that
``slurm/array.sbatch`` reads: line ``i`` (0-based) holds the overrides array task ``i`` passes to
``python -m roarkar.cli``. Each line is shell-quoted and self-contained (the user's overrides that
the cell does not set itself, then the cell's dataset, method, protocol, scalars and ``task=cell``),
so composing it gives the same config, hence the same cell identity, as :func:`roarkar.plan.cell_configs`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from omegaconf import DictConfig

from roarkar.files import write_text_atomic
from roarkar.plan import CONF_DIR, as_overrides, kept_overrides, override_key, plan
from roarkar.saliency.configs import pin_targets


def is_hydra_override(override: str) -> bool:
    """Overrides of Hydra's own config (launcher, sweep dirs): not part of a cell."""
    key = override_key(override)
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def cell_override_lines(cfg: DictConfig, overrides: list[str]) -> list[list[str]]:
    """For each cell of ``plan(cfg)``, in plan order, the overrides that run it as one job.

    The same filtering as :func:`roarkar.plan.cell_configs`: a user override is kept unless the
    cell sets that key itself, or it is a ``protocol.<key>`` the cell's protocol lacks; Hydra's own
    overrides (``hydra/launcher=...``, ``hydra.*``) are dropped. An external method's file target
    is made absolute (``pin_targets``): an array task on another node imports the same file.
    """
    overrides = pin_targets(cfg, overrides)
    user = [o for o in overrides if not is_hydra_override(o)]
    lines = []
    for groups, scalars in plan(cfg, overrides):
        lines.append(kept_overrides(user, groups, scalars) + as_overrides(groups, scalars))
    return lines


def _todo(cfg: DictConfig, overrides: list[str], lines: list[list[str]]) -> list[list[str]]:
    """Only the lines whose cell has no successful result yet (failed cells are kept: a rerun
    retries them)."""
    from roarkar.plan import cell_configs
    from roarkar.protocols.cell import cell_path
    from roarkar.store import is_finished

    return [
        line
        for line, cell_cfg in zip(lines, cell_configs(cfg, overrides), strict=True)
        if not is_finished(cell_path(cell_cfg)[2])
    ]


def write_cells_file(
    cfg: DictConfig, overrides: list[str], out: str | Path, *, todo: bool = False
) -> list[str]:
    """Write one shell-quoted override line per cell to ``out`` (``-``: stdout); return the lines.

    ``todo=True`` keeps only cells without a successful ``result.json`` under ``paths.results``
    (re-run only what is missing). Hydra must be initialised (``compose`` is used for ``todo``).
    """
    lines = cell_override_lines(cfg, overrides)
    if todo:
        lines = _todo(cfg, overrides, lines)
    text = [shlex.join(line) for line in lines]
    body = "".join(f"{line}\n" for line in text)
    if str(out) == "-":
        sys.stdout.write(body)
    else:
        write_text_atomic(Path(out), body)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m roarkar.cluster.cells",
        description="Write one override line per cell of the study plan (for slurm/array.sbatch).",
        epilog="example: python -m roarkar.cluster.cells cells/table4.txt experiment=table4",
    )
    parser.add_argument(
        "--todo",
        action="store_true",
        help="only cells without a successful result under paths.results (re-run what is missing)",
    )
    parser.add_argument("outfile", help="where to write the lines ('-' for stdout)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for roarkar")
    args = parser.parse_args(argv)

    from hydra import compose, initialize_config_dir

    from roarkar.config import register_configs
    from roarkar.config.overrides import schema_key_overrides

    register_configs()
    overrides = schema_key_overrides(args.overrides)  # dataset.workers=16 as roarkar takes it
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        lines = write_cells_file(cfg, overrides, args.outfile, todo=args.todo)
    if args.outfile != "-":
        n = len(lines)
        submit = (
            f"submit: sbatch --array=0-{n - 1}%{min(n, 32)} slurm/array.sbatch {args.outfile}"
            if n
            else "nothing to submit"
        )
        print(f"{n} cells -> {args.outfile}\n{submit}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
