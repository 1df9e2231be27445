"""roarkar: ROAR/KAR benchmarking of saliency maps."""

__version__ = "0.1.0"
