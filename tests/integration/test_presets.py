"""Study presets: every method they name exists, dry runs list cells without touching data, and a
study keeps the user's overrides except the keys each cell sets itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from roarkar.cli import run
from roarkar.plan import cell_configs, plan
from roarkar.protocols.cell import run_cell
from roarkar.report.progress import format_duration

CONF = Path(__file__).resolve().parents[2] / "conf"
STUDIES = sorted(p.stem for p in (CONF / "study").glob("*.yaml"))


@pytest.mark.parametrize("study", STUDIES)
def test_every_method_and_dataset_a_study_names_has_a_config(study):
    from roarkar.saliency.configs import method_ids

    cfg = OmegaConf.load(CONF / "study" / f"{study}.yaml")
    for protocol in ("layer", "input"):
        for method in (cfg.get(protocol) or {}).get("methods", []):
            assert method in method_ids(), (
                f"study {study}: {method} is neither registered nor in conf/method"
            )
    for dataset in cfg.get("datasets") or []:
        assert (CONF / "dataset" / f"{dataset}.yaml").exists(), (
            f"study {study}: no conf/dataset/{dataset}.yaml"
        )


def test_table4_dry_run_lists_300_cells_without_data(compose_cfg, tmp_path):
    cfg = compose_cfg(["experiment=table4", "task=plan"])
    out = run(cfg, compose_cfg.overrides)
    cells = out["cells"]
    assert len(cells) == 10 * 5 * 2 * 3
    assert {c["dataset"] for c in cells} == {"imagenet", "places365", "cowc"}
    assert {c["percent"] for c in cells if c["mode"] == "kar"} == {2.5}
    assert {c["percent"] for c in cells if c["mode"] == "roar"} == {10.0}
    assert cfg.model.name == "resnet50" and cfg.trainer.schedule == "step"  # He et al. recipe
    assert {c["epochs"] for c in cells} == {cfg.trainer.epochs.layer}  # 25, or 1 under debug=smoke
    assert all(c["status"] == "todo" for c in cells)
    assert not (tmp_path / "results" / "data").exists()  # nothing was prepared or written
    assert "300 cells: 0 done" in out["text"]


def test_a_dataset_override_restricts_a_paper_preset_to_that_dataset(compose_cfg):
    """``experiment=table4 dataset=imagenet`` (the README's command) plans ImageNet only and says
    so; a dataset the preset does not cover is an error naming the preset's list."""
    cfg = compose_cfg(["experiment=table4", "dataset=imagenet", "task=plan"])
    out = run(cfg, compose_cfg.overrides)
    assert {c["dataset"] for c in out["cells"]} == {"imagenet"} and len(out["cells"]) == 100
    assert "datasets: imagenet\n100 cells: 0 done" in out["text"]
    with pytest.raises(
        ValueError, match=r"dataset=synth_objects: the study covers study\.datasets"
    ):
        plan(compose_cfg(["experiment=table4", "dataset=synth_objects"]), ["dataset=synth_objects"])


def test_synthetic_presets_compose(compose_cfg):
    for name, expected in (("table4_synth", 11 * 5 * 2 * 3), ("table5_synth", 13 * 5 * 2 * 3)):
        cfg = compose_cfg([f"experiment={name}"])
        assert len(plan(cfg)) == expected
        assert cfg.model.name == "small_resnet"


def test_study_keeps_user_overrides_that_cells_do_not_set(compose_cfg):
    overrides = [
        "dataset=synth_cars",
        "protocol=input",
        "protocol.target=label",
        "trainer.lr=0.02",
        "study.layer.methods=[random]",
        "study.layer.layers=[L2]",
        "study.input.methods=[random]",
    ]
    cfg = compose_cfg(overrides)
    configs = cell_configs(cfg, compose_cfg.overrides)
    assert {c.dataset.name for c in configs} == {"synth_cars"}
    assert all(c.trainer.lr == 0.02 and c.task == "cell" for c in configs)
    assert {c.protocol.target for c in configs if c.protocol.name == "input"} == {"label"}
    assert {c.protocol.layer for c in configs if c.protocol.name == "layer"} == {"L2"}


def test_status_counts_cells_and_estimates_what_is_left(compose_cfg):
    study = ["study.layer.methods=[random]", "study.layer.layers=[L4,L5]", "study.input=null"]
    cfg = compose_cfg(study)
    run_cell(cell_configs(cfg, compose_cfg.overrides)[0])  # one of four cells finished
    out = run(compose_cfg([*study, "task=status"]), compose_cfg.overrides)
    (group,) = out["summary"]
    assert (group["done"], group["todo"], group["running"], group["failed"]) == (1, 3, 0, 0)
    assert group["wall_hours_spent"] > 0 and group["est_wall_hours_left"] == pytest.approx(
        3 * group["wall_hours_spent"]
    )
    assert group["gpu_hours_spent"] == 0.0  # CPU: no GPU-hours
    assert "4 cells: 1 done, 0 running, 0 failed, 3 todo" in out["text"]
    # the progress line: 1 of 4 done, the 3 left at the one finished cell's wall time
    left = format_duration(3 * group["wall_hours_spent"] * 3600)
    assert f"study: 1/4 cells done; about {left} left" in out["text"]


def test_a_study_asks_a_model_only_for_the_taps_it_has(compose_cfg, caplog):
    """seed 002's CNN has two taps: the default study's L3..L5 cells are left out, with a warning;
    a study of only missing taps is an error naming the model's taps."""
    cfg = compose_cfg(["model=nielsen_cnn"])
    with caplog.at_level("WARNING"):
        cells = plan(cfg)
    layers = {s["protocol.layer"] for g, s in cells if "protocol=layer" in g}
    assert layers == {"L1", "L2"}
    assert "has taps L1, L2: the study's layers L3, L4, L5 are left out" in caplog.text
    full = plan(compose_cfg([]))  # small_resnet: all five, nothing left out
    assert {s["protocol.layer"] for g, s in full if "protocol=layer" in g} == {
        f"L{i}" for i in range(1, 6)
    }
    with pytest.raises(ValueError, match=r"model nielsen_cnn has taps L1, L2 only"):
        plan(compose_cfg(["model=nielsen_cnn", "study.layer.layers=[L4,L5]"]))


def test_nielsen2022_presets_plan_seed_002s_design(compose_cfg):
    """The paper's design (3 seeds x 9 levels x 10 methods, ROAR only) and its CPU variant, whose
    cheaper sample counts are the study's own method parameters (``method_params``)."""
    full = compose_cfg(["experiment=nielsen2022"])
    assert (full.dataset.name, full.model.name) == ("mnist", "nielsen_cnn")
    cells = plan(full)
    assert len(cells) == 3 * 9 * 10 and {s["protocol.mode"] for _, s in cells} == {"roar"}
    assert full.trainer.epochs.base == full.trainer.epochs.input  # t = 0 trained like t > 0
    cpu = compose_cfg(["experiment=nielsen2022_cpu"])
    cells = plan(cpu)
    assert len(cells) == 2 * 5 * 10
    sig = [s for g, s in cells if "method=smoothed_ig" in g]
    assert sig and all(
        s["method.params.samples"] == 4 and s["method.params.inner_params.steps"] == 4 for s in sig
    )
    configs = {str(c.method.id): c for c in cell_configs(cpu, compose_cfg.overrides)}
    assert configs["smoothed_ig"].method.params.inner_params.steps == 4
    assert configs["smoothgrad"].method.params.samples == 8
    paper = {str(c.method.id): c for c in cell_configs(full, compose_cfg.overrides)}
    assert paper["smoothgrad"].method.params.samples == 15  # the paper's, one preset away
    assert paper["smoothed_ig"].method.params.inner_params.steps == 50
    assert configs["guided_backprop"].method.params.non_relu == "pass"


def test_nielsen2022_preset_runs_at_smoke_size(compose_cfg, tmp_path):
    """The CPU preset end to end on the offline MNIST digits (one level, one seed)."""
    cfg = compose_cfg(
        ["experiment=nielsen2022_cpu", "study.seeds=[0]", "study.input.percents=[50]"]
    )
    out = run(cfg, compose_cfg.overrides)
    assert out["cells"] == 10 and out["failed"] == 0  # ten methods, all finished
    assert "smoothed_gbp" in out["tables"] and "ROAR 50%" in out["tables"]


def test_a_studys_method_params_are_checked_and_may_add_a_parameter(compose_cfg):
    """A typo in a method's name or parameter is an error naming the study key; a parameter the
    method's config does not list is added, the same in a study and in a cell's own job."""
    from hydra import compose

    from roarkar.plan import as_overrides

    with pytest.raises(ValueError, match=r"study.input.method_params.smoothgradd: .* not one of"):
        plan(
            compose_cfg(
                [
                    "experiment=nielsen2022_cpu",
                    "+study.input.method_params.smoothgradd={samples: 2}",
                ]
            )
        )
    with pytest.raises(ValueError, match=r"method_params.smoothgrad: .* no parameter\(s\) bogus"):
        plan(
            compose_cfg(
                ["experiment=nielsen2022_cpu", "+study.input.method_params.smoothgrad={bogus: 1}"]
            )
        )
    overrides = [
        "study.layer=null",
        "study.input.methods=[guided_backprop]",
        "study.input.percents=[50]",
        "study.input.modes=[roar]",
        "study.seeds=[0]",
        "+study.input.method_params.guided_backprop={non_relu: pass}",
    ]
    cfg = compose_cfg(overrides)
    (cell,) = cell_configs(cfg, compose_cfg.overrides)
    assert cell.method.params.non_relu == "pass"  # method=guided_backprop has params {}
    ((groups, scalars),) = plan(cfg)
    job = compose(
        config_name="config", overrides=[*compose_cfg.overrides, *as_overrides(groups, scalars)]
    )
    assert job.method == cell.method and job.protocol == cell.protocol
