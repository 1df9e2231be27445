"""roarkar's process-wide CPU settings (roarkar/runtime.py): what each does and how to opt out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from roarkar import runtime

MALLOC_ENV = ("ROARKAR_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")


@pytest.fixture
def clean_env(monkeypatch):
    for name in MALLOC_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_tune_malloc_sets_glibc_and_the_environment_for_children(clean_env):
    if runtime.glibc() is None:
        pytest.skip("not glibc")
    state = runtime.tune_malloc()
    assert state.startswith("tuned by roarkar") and runtime.malloc_state == state
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(runtime.MMAP_THRESHOLD)
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == str(runtime.TRIM_THRESHOLD)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ROARKAR_MALLOC", "default", "glibc defaults (ROARKAR_MALLOC=default)"),
        ("MALLOC_TRIM_THRESHOLD_", "1000", "from the environment: MALLOC_TRIM_THRESHOLD_=1000"),
        ("LD_PRELOAD", "/usr/lib/libjemalloc.so.2", "left alone (LD_PRELOAD="),
    ],
)
def test_tune_malloc_leaves_a_choice_of_the_user_alone(clean_env, name, value, expected):
    clean_env.setenv(name, value)
    assert runtime.tune_malloc().startswith(expected)
    if name != "MALLOC_TRIM_THRESHOLD_":
        assert "MALLOC_TRIM_THRESHOLD_" not in os.environ


def test_tune_process_applies_the_settings_in_a_fresh_process(clean_env):
    """What every console entry point runs first (roarkar/entry.py), and a library user may call."""
    clean_env.delenv("OMP_WAIT_POLICY", raising=False)
    code = (
        "import os, roarkar.runtime as r; r.tune_process(); print(r.malloc_state);"
        " print(os.environ['OMP_WAIT_POLICY']); print(r.omp_wait_policy_state)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0].startswith("tuned by roarkar") or out[0].startswith("left alone (not glibc)")
    assert out[1:] == ["PASSIVE", "PASSIVE (set by roarkar)"]
    clean_env.setenv("OMP_WAIT_POLICY", "ACTIVE")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[1:] == ["ACTIVE", "ACTIVE (from the environment)"]


IMPORT_EVERYTHING = """
import importlib, os, pkgutil, signal, sys, threading
import torch
env, threads = dict(os.environ), torch.get_num_threads()
sigs = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1,
                                          signal.SIGUSR2, signal.SIGCHLD)}
import roarkar
names = sorted(m.name for m in pkgutil.walk_packages(roarkar.__path__, "roarkar."))
for name in names:
    importlib.import_module(name)
changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))
print("modules", len(names))
print("env", changed)
print("threads", torch.get_num_threads() == threads)
print("signals", [s for s, h in sigs.items() if signal.getsignal(s) != h])
print("threads_alive", threading.active_count())
"""


def test_importing_every_module_changes_nothing_in_the_process(clean_env):
    """timm's rule: importing registers, nothing else (no environment, allocator, threads or
    signal handlers); the CPU tuning belongs to the entry points."""
    clean_env.delenv("OMP_WAIT_POLICY", raising=False)
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    got = dict(line.split(" ", 1) for line in out)
    assert int(got["modules"]) > 50
    assert got["env"] == "[]", f"an import changed the environment: {got['env']}"
    assert got["threads"] == "True" and got["signals"] == "[]"
    assert got["threads_alive"] == "1", "an import started a thread"


def test_the_console_scripts_settle_the_process_before_torch_loads():
    code = (
        "import sys, roarkar.entry as e; sys.argv = ['roarkar-tables', '--help'];\n"
        "try:\n    e.tables()\nexcept SystemExit:\n    pass\n"
        "import os, roarkar.runtime as r; print(r.omp_wait_policy_state)"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.splitlines()
    assert out[-1] == "PASSIVE (set by roarkar)"


def test_an_unknown_malloc_choice_is_named_and_the_default_used(clean_env):
    clean_env.setenv("ROARKAR_MALLOC", "jemalloc")
    with pytest.warns(UserWarning, match="ROARKAR_MALLOC='jemalloc' is not a known setting"):
        state = runtime.tune_malloc()
    assert state.startswith("tuned by roarkar") or state == "left alone (not glibc)"
