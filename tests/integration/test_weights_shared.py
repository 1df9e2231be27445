"""One copy of a weights file's network per content hash (issue 30 item 6): every dataset subset's
base model of the same weights links that copy instead of saving its own."""

from __future__ import annotations

import torch

from roarkar.cli import run
from roarkar.models import build_model


def test_dataset_subsets_share_one_copy_of_the_weights(compose_cfg, tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "w.pth"
    torch.save(build_model("small_resnet", 8).net.state_dict(), weights)
    ids = [
        run(
            compose_cfg(["task=base", f"model.weights={weights}", f"dataset.train_size={n}"]),
            compose_cfg.overrides,
        )["identity"]
        for n in (96, 64)
    ]
    assert ids[0] != ids[1], "two subsets, two base models"
    models = tmp_path / "results" / "models"
    (shared,) = (models / "_weights").glob("*.pt")
    files = sorted(p for p in models.rglob("model.pt") if "_weights" not in p.parts)
    assert len(files) == 2
    assert all(f.stat().st_ino == shared.stat().st_ino for f in files)  # links, not copies
    assert shared.stat().st_nlink == 3
    # found again: read back through the link, its identity checked
    again = run(
        compose_cfg(["task=base", f"model.weights={weights}", "dataset.train_size=64"]),
        compose_cfg.overrides,
    )
    assert again["identity"] == ids[1]
