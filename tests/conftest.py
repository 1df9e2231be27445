"""Shared fixtures: tests compose the real conf/ with tiny overrides (debug=smoke)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# before torch is imported: idle OpenMP threads must not spin on a shared 2-core machine
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def randomize_batchnorm(
    model: nn.Module,
    mean: tuple[float, float] = (-0.2, 0.2),
    var: tuple[float, float] = (0.5, 1.5),
    weight: tuple[float, float] | None = None,
    bias: tuple[float, float] | None = None,
) -> nn.Module:
    """Draw every BatchNorm's running statistics (and, when given, its affine weight and bias) from
    uniform ranges, so eval and train mode differ and folding BatchNorm is not the identity."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(*mean)
                module.running_var.uniform_(*var)
                if weight is not None:
                    module.weight.uniform_(*weight)
                if bias is not None:
                    module.bias.uniform_(*bias)
    return model


@pytest.fixture
def compose_cfg(tmp_path):
    """compose(overrides) -> cfg with paths.results in a temp dir; Hydra stays initialised inside."""
    from hydra import compose, initialize_config_dir

    from roarkar.config import register_configs

    contexts = []

    def _compose(overrides=(), results: Path | None = None):
        if not contexts:
            register_configs()  # as the entry points do: the schema, method=<registered name>
            ctx = initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3")
            ctx.__enter__()
            contexts.append(ctx)
        results = results or tmp_path / "results"
        _compose.overrides = [f"paths.results={results}", "debug=smoke", *overrides]
        return compose(config_name="config", overrides=_compose.overrides)

    yield _compose
    for ctx in contexts:
        ctx.__exit__(None, None, None)


@contextlib.contextmanager
def composing():
    """Hydra initialised on conf/ with the schema registered: yields ``compose(overrides) -> cfg``
    for fixtures wider than one test (``compose_cfg`` is per test)."""
    from hydra import compose, initialize_config_dir

    from roarkar.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda overrides: compose(config_name="config", overrides=list(overrides))


def run_in_tree(results: Path, *overrides: str) -> dict:
    """``roarkar`` with ``overrides`` at ``debug=smoke`` into the tree ``results``, in-process (what
    a module's fixture runs once for its tests)."""
    from roarkar.cli import run

    given = [f"paths.results={results}", "debug=smoke", *overrides]
    with composing() as compose:
        return run(compose(given), given)


def cell_record(
    method: str, mode: str, layer: str | None = "", seed: int = 0, percent: float | None = None
) -> dict:
    """A result.json's ``cell`` block on the synth/small_resnet study: a layer cell when ``layer``
    is given (L1..L5), else an input cell; ``percent`` defaults to the paper's KAR 2.5 / ROAR 10."""
    return {
        "dataset": "synth",
        "model": "small_resnet",
        "protocol": "layer" if layer else "input",
        "method": method,
        "layer": layer,
        "mode": mode,
        "percent": (2.5 if mode == "kar" else 10.0) if percent is None else percent,
        "seed": seed,
    }
