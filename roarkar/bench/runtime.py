"""roarkar's glibc malloc settings (roarkar/runtime.py) against glibc's defaults, side by side.

malloc is configured once per process, so each side runs in its own subprocess: the two kinds
alternate, ``pairs`` times, on the same workload, and each reports the median of its timed rounds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from roarkar.bench.table import config_str, row
from roarkar.bench.timing import Samples
from roarkar.bench.workload import Sizes, bench_model

#: Environment of each side: roarkar's settings (the child applies them first thing) or glibc's.
SIDES = {"roarkar": {}, "glibc default": {"ROARKAR_MALLOC": "default"}}


def _side_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without any malloc choice (roarkar put its thresholds here for the processes
    it starts, or the user did), plus the side's own."""
    drop = {"ROARKAR_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def _workloads(sz: Sizes) -> dict[str, tuple[str, dict]]:
    """Name -> (kind, arguments) of the timed work, sized by the bench mode."""
    return {
        f"{sz.big_model} forward, {sz.big_size} px, batch {sz.big_batch}": (
            "forward",
            {
                "model": sz.big_model,
                "classes": sz.big_classes,
                "size": sz.big_size,
                "batch": sz.big_batch,
            },
        ),
        f"small ResNet training step, {sz.small_size} px, batch {sz.train_batch}": (
            "train_step",
            {
                "model": "small_resnet",
                "classes": 10,
                "size": sz.small_size,
                "batch": sz.train_batch,
            },
        ),
    }


def run_runtime(sz: Sizes) -> list[dict]:
    """Rows: median ms of each side per workload, and roarkar's speed-up over glibc's defaults."""
    rows = []
    pairs, rounds = sz.runtime_pairs, 2 * sz.repeats + 2
    for what, (kind, args) in _workloads(sz).items():
        runs: dict[str, list[dict]] = {side: [] for side in SIDES}
        for p in range(pairs):
            order = list(SIDES) if p % 2 == 0 else list(SIDES)[::-1]
            for side in order:
                runs[side].append(_measure(kind, args, rounds, SIDES[side]))
        medians = {side: statistics.median(r["ms"] for r in runs[side]) for side in SIDES}
        config = config_str(**args, pairs=pairs, rounds=rounds)
        for side in SIDES:
            s = Samples(
                wall={i: r["ms"] / 1000 for i, r in enumerate(runs[side])},
                cpu={i: r["cpu_ms"] / 1000 for i, r in enumerate(runs[side])},
            )
            rows.append(
                row(
                    "runtime",
                    f"{what}: malloc {side}",
                    config,
                    medians[side],
                    "ms",
                    samples=s,
                    peak_mem_mb=max(r["rss_mb"] for r in runs[side]),
                    notes=f"{runs[side][0]['malloc']}; peak_mem = the subprocess's max RSS",
                )
            )
        speedup = medians["glibc default"] / medians["roarkar"]
        rows.append(
            row(
                "runtime",
                f"{what}: speed-up of roarkar's malloc settings over glibc's defaults",
                config,
                speedup,
                "x",
                ratio=speedup,
                repeats=pairs,
                notes="subprocesses of each kind alternate; median over them of each one's median round",
            )
        )
    return rows


def _measure(kind: str, args: dict, rounds: int, extra_env: dict[str, str]) -> dict:
    cmd = [sys.executable, "-m", "roarkar.bench.runtime", kind, json.dumps(args), str(rounds)]
    done = subprocess.run(
        cmd, env=_side_env(extra_env), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench worker {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _worker(kind: str, args: dict, rounds: int) -> dict:
    """Median ms over ``rounds`` of one workload in this process (after one untimed call)."""
    import resource

    import torch

    from roarkar import runtime

    model = bench_model(args["model"], args["classes"])
    x = torch.randn(args["batch"], 3, args["size"], args["size"])
    if kind == "forward":
        model.eval()

        def step():
            with torch.no_grad():
                model(x)

    else:
        y = torch.randint(0, args["classes"], (args["batch"],))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

        def step():
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

    step()
    times, cpu = [], []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "ms": 1000 * statistics.median(times),
        "cpu_ms": 1000 * statistics.median(cpu),
        "rss_mb": rss_mb,
        "malloc": runtime.malloc_state,
    }


if __name__ == "__main__":
    from roarkar.runtime import tune_process

    tune_process()  # first thing, as a console entry point does (roarkar/entry.py)
    print(json.dumps(_worker(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]))))
