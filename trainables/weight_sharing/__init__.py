"""Weight-sharing search on nats-tss: the search loop, methods and selection criteria.

The names are listed here without importing torch, for the command line; tests check
that they match the registries in `methods` and `selection`.
"""

METHOD_NAMES = ("darts-v1", "darts-v2", "gdas", "rsps", "setn", "enas")
SELECTION_NAMES = ("alpha", "ostr", "saliency", "sampled")
