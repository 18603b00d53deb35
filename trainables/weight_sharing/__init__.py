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
# --latency-target: the nats-tss methods that move architecture parameters alpha by a gradient (their
# distribution softmax(alpha) has a differentiable expected latency). Not rsps (uniform sampling: nothing
# to steer), enas (an LSTM controller learnt by REINFORCE: no per-edge probabilities to differentiate),
# autohas / autohas-hp (the `has` space, which a latency table does not cover) nor the nats-sss methods.
LATENCY_TARGET_METHODS = ("darts-v1", "darts-v2", "gdas", "setn", "sanas-darts", "sanas-gdas", "lease")



def check_latency_target(methods: list[str], space: str) -> None:
    """ValueError with a one-line reason unless every method of `methods` can take a latency target on `space`."""
    if space != "nats-tss":
        raise ValueError(f"--latency-target is for nats-tss cells (the latency table's), not {space}")
    refused = [m for m in methods if m not in LATENCY_TARGET_METHODS]
    if refused:
        raise ValueError(
            f"--latency-target steers architecture parameters by their gradient ({', '.join(LATENCY_TARGET_METHODS)}); "
            f"{', '.join(refused)} {'has' if len(refused) == 1 else 'have'} no differentiable architecture distribution "
            "on nats-tss (rsps samples uniformly, enas' controller learns by REINFORCE)"
        )


RETRAIN_EPOCHS = 12  # NATS-Bench H0's length: what AutoHAS derives, and widths no benchmark scores, need re-training


def retrain_epochs_for(algo: str, retrain_epochs: int | None, looked_up: bool = False) -> int:
    """Epochs of re-training after `algo`'s search: as asked, else 12 (H0) for AutoHAS, and for
    the size-space methods when no benchmark scores the derived widths; none for the others."""
    if retrain_epochs is not None:
        return int(retrain_epochs)
    if algo in HAS_METHODS or (algo in SIZE_METHODS and not looked_up):
        return RETRAIN_EPOCHS
    return 0
