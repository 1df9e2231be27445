"""Process-wide CPU settings, applied by roarkar's console entry points (``tune_process``; a library
user calls it before importing torch), never by an import; the environment can override each.

- ``OMP_WAIT_POLICY=PASSIVE``: OpenMP threads that spin while idle make torch on shared or busy CPUs
  many times slower (a small ResNet forward: 524 ms spinning vs 7 ms passive, measured by
  roarkar-bench under load). It must be set before torch is imported; a value the user set wins.
- glibc malloc keeps freed blocks of up to 32 MiB in its heap (instead of unmapping them and
  page-faulting fresh zeroed pages in on the next allocation) and returns memory to the system only
  past 256 MiB free at the top of the heap. Torch's CPU allocator asks malloc for every activation,
  so this is measured by ``roarkar-bench --only runtime`` side by side with glibc's defaults (a
  ResNet-50 forward at 224 px, batch 4, on the 2-core CPU: 1.18x faster; peak RSS unchanged).
  ``ROARKAR_MALLOC=default``, or setting ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``
  yourself, or preloading another allocator (jemalloc, tcmalloc) leaves malloc alone.
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings

#: Largest block glibc serves from its heap rather than a fresh mapping (glibc's own maximum).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap kept rather than returned to the system.
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, <malloc.h>
_ENV = {"MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD, "MALLOC_TRIM_THRESHOLD_": TRIM_THRESHOLD}

#: What :func:`tune_malloc` and :func:`set_omp_wait_policy` did here, for the bench's environment.
malloc_state = "not set yet"
omp_wait_policy_state = "not set yet"


def tune_process() -> tuple[str, str]:
    """Both settings below, as every console entry point applies them first thing: what was done
    with OpenMP's wait policy and with malloc."""
    return set_omp_wait_policy(), tune_malloc()


def set_omp_wait_policy() -> str:
    """``OMP_WAIT_POLICY=PASSIVE`` unless the environment chose a policy. It takes effect only if
    torch (its OpenMP runtime) was not loaded yet. Returns (and keeps) what was done."""
    global omp_wait_policy_state
    if "OMP_WAIT_POLICY" in os.environ:
        omp_wait_policy_state = f"{os.environ['OMP_WAIT_POLICY']} (from the environment)"
    else:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        late = " (torch was already loaded: no effect)" if "torch" in sys.modules else ""
        omp_wait_policy_state = f"PASSIVE (set by roarkar){late}"
    return omp_wait_policy_state


def tune_malloc() -> str:
    """Apply :data:`MMAP_THRESHOLD` and :data:`TRIM_THRESHOLD` to glibc malloc in this process, and
    put them in the environment for the processes it starts (glibc reads them there at start-up).
    Returns (and keeps in :data:`malloc_state`) what was done and why."""
    global malloc_state
    malloc_state = _tune_malloc()
    return malloc_state


def _tune_malloc() -> str:
    choice = os.environ.get("ROARKAR_MALLOC", "tuned")
    if choice == "default":
        return "glibc defaults (ROARKAR_MALLOC=default)"
    if choice != "tuned":
        warnings.warn(
            f"ROARKAR_MALLOC={choice!r} is not a known setting: expected 'tuned' (the default) or "
            "'default' (glibc's own thresholds); using 'tuned'",
            stacklevel=3,
        )
    if any(name in os.environ for name in _ENV):
        return "from the environment: " + ", ".join(
            f"{name}={os.environ[name]}" for name in _ENV if name in os.environ
        )
    preload = os.environ.get("LD_PRELOAD", "")
    if "malloc" in preload:  # jemalloc, tcmalloc, mimalloc
        return f"left alone (LD_PRELOAD={preload})"
    libc = glibc()
    if libc is None:
        return "left alone (not glibc)"
    if libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        return "left alone (glibc refused M_MMAP_THRESHOLD)"
    libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    for name, value in _ENV.items():
        os.environ[name] = str(value)
    return f"tuned by roarkar (mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim {TRIM_THRESHOLD >> 20} MiB)"


def glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc on Linux (the one whose malloc is tuned), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 -- only glibc has it (not musl)
    except (OSError, AttributeError):
        return None
    return libc


__all__ = [
    "MMAP_THRESHOLD",
    "TRIM_THRESHOLD",
    "glibc",
    "malloc_state",
    "omp_wait_policy_state",
    "set_omp_wait_policy",
    "tune_malloc",
]
