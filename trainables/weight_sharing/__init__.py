"""Weight-sharing search on nats-tss and nats-sss: the search loop, methods and selection criteria.

The names are listed here without importing torch, for the command line; tests check
that they match the registries in `methods` and `selection`.
"""

METHOD_NAMES = (
    "darts-v1", "darts-v2", "gdas", "rsps", "setn", "enas",
    "sanas-darts", "sanas-gdas", "lease", "autohas", "autohas-hp", "tas", "mask-gumbel", "mask-sample",
)
HAS_METHODS = ("autohas", "autohas-hp")  # search hyperparameters: need the `has` space
SIZE_METHODS = ("tas", "mask-gumbel", "mask-sample")  # search nats-sss widths
SELECTION_NAMES = ("alpha", "ostr", "saliency", "sampled")

RETRAIN_EPOCHS = 12  # NATS-Bench H0's length: what AutoHAS derives, and widths no benchmark scores, need re-training


def retrain_epochs_for(algo: str, retrain_epochs: int | None, looked_up: bool = False) -> int:
    """Epochs of re-training after `algo`'s search: as asked, else 12 (H0) for AutoHAS, and for
    the size-space methods when no benchmark scores the derived widths; none for the others."""
    if retrain_epochs is not None:
        return int(retrain_epochs)
    if algo in HAS_METHODS or (algo in SIZE_METHODS and not looked_up):
        return RETRAIN_EPOCHS
    return 0
