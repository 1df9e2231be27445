"""roarkar: ROAR/KAR benchmarking of saliency maps.

Importing roarkar (or any part of it) changes nothing in the process: the CPU settings of
:mod:`roarkar.runtime` are applied by the console entry points, and by library users who want them
with ``roarkar.runtime.tune_process()`` before importing torch.
"""

__version__ = "0.1.0"
