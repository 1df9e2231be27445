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
    if runtime._glibc() is None:
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


def test_importing_roarkar_applies_the_settings_in_a_fresh_process(clean_env):
    clean_env.delenv("OMP_WAIT_POLICY", raising=False)
    code = (
        "import os, roarkar.runtime as r; print(r.malloc_state); print(os.environ['OMP_WAIT_POLICY']);"
        " print(r.omp_wait_policy_state)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0].startswith("tuned by roarkar") or out[0].startswith("left alone (not glibc)")
    assert out[1:] == ["PASSIVE", "PASSIVE (set by roarkar at import)"]
    clean_env.setenv("OMP_WAIT_POLICY", "ACTIVE")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[1:] == ["ACTIVE", "ACTIVE (from the environment)"]


def test_an_unknown_malloc_choice_is_named_and_the_default_used(clean_env):
    clean_env.setenv("ROARKAR_MALLOC", "jemalloc")
    with pytest.warns(UserWarning, match="ROARKAR_MALLOC='jemalloc' is not a known setting"):
        state = runtime.tune_malloc()
    assert state.startswith("tuned by roarkar") or state == "left alone (not glibc)"
