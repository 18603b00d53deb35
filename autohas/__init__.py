"""autohas: a Ray Tune-based orchestrator for neural architecture and hyperparameter search."""

__version__ = "0.1.0"
