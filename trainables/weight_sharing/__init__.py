"""Weight-sharing search on nats-tss: the search loop, methods and selection criteria.

The names are listed here without importing torch, for the command line; tests check
that they match the registries in `methods` and `selection`.
"""

METHOD_NAMES = (
    "darts-v1", "darts-v2", "gdas", "rsps", "setn", "enas",
    "sanas-darts", "sanas-gdas", "lease", "autohas", "autohas-hp",
)
HAS_METHODS = ("autohas", "autohas-hp")  # search hyperparameters: need the `has` space
SELECTION_NAMES = ("alpha", "ostr", "saliency", "sampled")

RETRAIN_EPOCHS_HAS = 12  # NATS-Bench H0's length: AutoHAS' derived hyperparameters only mean something re-trained


def retrain_epochs_for(algo: str, retrain_epochs: int | None) -> int:
    """Epochs of re-training after `algo`'s search: as asked, else 12 for AutoHAS and none for the others."""
    if retrain_epochs is not None:
        return int(retrain_epochs)
    return RETRAIN_EPOCHS_HAS if algo in HAS_METHODS else 0
