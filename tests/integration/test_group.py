"""Layer cells trained as one group on a shared prefix equal the same cells trained alone, bit for
bit (per-epoch history, held-out accuracy and score, final weights), also after a kill mid-group."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from roarkar.models import build_model
from roarkar.protocols import group as group_module
from roarkar.protocols.context import Context
from roarkar.protocols.group import SharedPrefix, run_layer_group
from roarkar.protocols.layer import LayerCell, run_layer_cell
from roarkar.training import DistInfo, TrainerSettings

TAP = "L3"
# two statistics of the post-ReLU tap (the same generator draws per batch: one shared prefix), the
# random control (more draws: its augmentation diverges after each epoch's first batch, so the
# shared prefix must not be reused for it) and a pre-ReLU statistic (stage by stage, not shared)
METHODS = ("smoe_scale", "std", "random", "truncnormal_std")
CELLS = [(m, mode) for m in METHODS for mode in ("kar", "roar")]


def _split(n: int, seed: int) -> SimpleNamespace:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 4, (n,), generator=g)
    return SimpleNamespace(images=images, labels=labels, relevance=None)


def _ctx(root: Path, method: str, epochs: int = 3) -> Context:
    stage = SimpleNamespace(epochs=epochs, lr_scale=1.0)
    cfg = SimpleNamespace(  # the typed config's pieces the layer protocol reads
        trainer=SimpleNamespace(stage=lambda name: stage),
        dataset=SimpleNamespace(augment="crop_flip"),
        loader=SimpleNamespace(),
    )
    info = SimpleNamespace(root=root, has_relevance=False, mean=(0.5,) * 3, std=(0.25,) * 3)
    settings = TrainerSettings.preset(
        batch_size=8, lr=0.05, lr_reference_batch=8, weight_decay=1e-4, progress=False
    )
    spec = SimpleNamespace(seed=3, method_id=method)
    return Context(cfg, info, _split(32, 0), _split(16, 1), DistInfo(), settings, root, spec)


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    return build_model("small_resnet", 4, width=4).eval()


def _group_cells(root: Path, on_step=None) -> list[LayerCell]:
    cells = []
    for i, (method, mode) in enumerate(CELLS):
        checkpoint = root / f"cell{i}.pt"
        hook = None if on_step is None else (lambda s, i=i: on_step(i, s))
        cells.append(
            LayerCell(_ctx(root, method), method, {}, mode, 0.5, f"id{i}", checkpoint, hook)
        )
    return cells


def _alone(root: Path, base) -> list:
    root.mkdir()
    return [
        run_layer_cell(
            base, TAP, LayerCell(_ctx(root, m), m, {}, mode, 0.5, f"id{i}", root / f"cell{i}.pt")
        )
        for i, (m, mode) in enumerate(CELLS)
    ]


def _same(group_results, alone_results, group_root: Path, alone_root: Path) -> None:
    for i, (got, want) in enumerate(zip(group_results, alone_results, strict=True)):
        assert got.history == want.history, CELLS[i]
        assert got.accuracy == want.accuracy and got.true_class_score == want.true_class_score
        mine = torch.load(group_root / f"cell{i}.pt", weights_only=True)["net"]
        theirs = torch.load(alone_root / f"cell{i}.pt", weights_only=True)["net"]
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), CELLS[i]


def test_group_equals_cells_alone_and_shares_the_prefix(tmp_path, base, monkeypatch):
    made = []

    class Counting(SharedPrefix):
        def __init__(self):
            super().__init__()
            made.append(self)

    monkeypatch.setattr(group_module, "SharedPrefix", Counting)
    alone = _alone(tmp_path / "alone", base)
    (tmp_path / "group").mkdir()
    grouped = run_layer_group(base, TAP, _group_cells(tmp_path / "group"))
    _same(grouped, alone, tmp_path / "group", tmp_path / "alone")
    # per epoch of 4 steps: the first batch's prefix serves the 6 post-ReLU cells (5 reuses), each
    # later one the 4 statistic cells and the 2 random ones apart (2 computed, 4 reused)
    assert made[0].hits >= 3 * (5 + 3 * 4)


class _Killed(BaseException):
    """Stands for SIGKILL: not caught as one cell's failure, so the whole group stops."""


def test_a_kill_mid_group_resumes_every_cell_to_the_same_values(tmp_path, base):
    alone = _alone(tmp_path / "alone", base)
    root = tmp_path / "group"
    root.mkdir()

    def kill(cell: int, step: int) -> None:
        if cell == 2 and step == 4 + 1:  # epoch 2, step 2 of cell 2: cells 0, 1 stepped past it
            raise _Killed

    with pytest.raises(_Killed):
        run_layer_group(base, TAP, _group_cells(root, kill))
    epochs = [torch.load(root / f"cell{i}.pt", weights_only=True)["epoch"] for i in range(8)]
    assert epochs == [1] * 8
    (root / "cell4.pt").unlink()  # one cell from scratch: the group runs from epoch 0 again
    resumed = run_layer_group(base, TAP, _group_cells(root))
    assert [r.resumed_from_epoch for r in resumed] == [1, 1, 1, 1, 0, 1, 1, 1]
    _same(resumed, alone, root, tmp_path / "alone")


def test_a_failing_cell_leaves_the_group_and_the_others_finish(tmp_path, base):
    def fail(cell: int, step: int) -> None:
        if cell == 1 and step == 2:
            raise RuntimeError("cell 1 broke")

    results = run_layer_group(base, TAP, _group_cells(tmp_path, fail))
    assert isinstance(results[1], RuntimeError)
    assert all(r.history and len(r.history) == 3 for i, r in enumerate(results) if i != 1)


def test_cells_of_different_recipes_are_refused(tmp_path, base):
    cells = _group_cells(tmp_path)
    cells[1].ctx = _ctx(tmp_path, "smoe_scale", epochs=2)
    with pytest.raises(ValueError, match="must share"):
        run_layer_group(base, TAP, cells)
