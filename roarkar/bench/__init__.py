"""`roarkar-bench`: speed and memory of saliency, SMOE overhead, Captum parity, training, loading and
the embedded study, measured side by side in one run (see :mod:`roarkar.bench.cli`)."""
