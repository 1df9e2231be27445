"""roarkar: ROAR/KAR benchmarking of saliency maps."""

from roarkar import runtime as _runtime

# Before torch is imported (see roarkar/runtime.py for what each does and how to opt out).
_runtime.set_omp_wait_policy()
_runtime.tune_malloc()

__version__ = "0.1.0"
