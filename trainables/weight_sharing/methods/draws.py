"""The random draws and enumerations the methods share; each draw takes the search's generator."""
from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F


def gumbel_noise(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard Gumbel noise shaped like `like`, -log(Exp(1)); redrawn whole while any is infinite
    (an exponential draw of exactly 0), as the reference's GDAS does."""
    while True:
        noise = -torch.empty_like(like).exponential_(generator=generator).log()
        if not torch.isinf(noise).any():
            return noise


def gumbel_softmax(
    alpha: torch.Tensor, tau: float, generator: torch.Generator, noise_on: str = "log-probabilities"
) -> torch.Tensor:
    """softmax((log_softmax(alpha) + Gumbel) / tau) per row (TAS Eq. 3.11); with `noise_on`
    "probabilities", softmax((softmax(alpha) + Gumbel) / tau) (AutoHAS' Eq. 4.7)."""
    base = F.softmax(alpha, dim=-1) if noise_on == "probabilities" else F.log_softmax(alpha, dim=-1)
    return F.softmax((base + gumbel_noise(alpha, generator)) / tau, dim=-1)


def gumbel_straight_through(
    alpha: torch.Tensor, tau: float, generator: torch.Generator, noise_on: str = "log-probabilities"
) -> tuple[torch.Tensor, list[int]]:
    """GDAS' hard sample per row of `alpha`: the one-hot of argmax(log_softmax(alpha) + Gumbel)
    in the forward pass, the gradient of softmax((log_softmax(alpha) + Gumbel) / tau) backward
    (`noise_on` as `gumbel_softmax`)."""
    soft = gumbel_softmax(alpha, tau, generator, noise_on)
    index = soft.argmax(dim=-1)
    hard = F.one_hot(index, alpha.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft, index.tolist()


def gdas_tau(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """Linear annealing from tau_max (first epoch) to tau_min (last epoch)."""
    if epochs <= 1:
        return tau_max
    return tau_max - (tau_max - tau_min) * epoch / (epochs - 1)


def all_architectures(edges: int, ops: int) -> np.ndarray:
    """Every op-index assignment to `edges` edges, the first edge varying slowest: (ops**edges, edges)."""
    return np.array(list(itertools.product(range(ops), repeat=edges)), dtype=np.int64)


def uniform_ops(count: int, ops: int, generator: torch.Generator) -> list[int]:
    """`count` op indices, each uniform over `ops`, drawn one at a time (the reference draws
    them one `random.choice` at a time; tests replay that order)."""
    return [int(torch.randint(ops, (1,), generator=generator, device=generator.device)) for _ in range(count)]


def uniform_architecture(edges: int, ops: int, generator: torch.Generator) -> list[int]:
    """One op per edge, uniformly at random."""
    return uniform_ops(edges, ops, generator)


def distinct_random_architectures(count: int, edges: int, ops: int, generator: torch.Generator) -> list[list[int]]:
    """`count` distinct architectures drawn uniformly without replacement (the reference's
    `return_topK(count, use_random=True)`)."""
    total = ops**edges
    picks = torch.randperm(total, generator=generator, device=generator.device)[: min(count, total)].tolist()
    return [list(np.unravel_index(pick, (ops,) * edges)) for pick in picks]


def node_edges() -> list[list[int]]:
    """Per computed node of the cell (1, 2, 3), the indices of its incoming edges."""
    from autohas.spaces.nats_tss import EDGES

    nodes = sorted({dst for dst, _ in EDGES})
    return [[e for e, (dst, _) in enumerate(EDGES) if dst == node] for node in nodes]


def most_probable_architectures(alpha: torch.Tensor, count: int) -> list[list[int]]:
    """The `count` architectures of highest log-probability under softmax(alpha) per edge,
    best first (ties in enumeration order), as the reference's `return_topK(count, False)`."""
    log_probs = F.log_softmax(alpha.detach().double().cpu(), dim=-1).numpy()
    archs = all_architectures(*log_probs.shape)
    scores = log_probs[np.arange(log_probs.shape[0])[None, :], archs].sum(axis=1)
    order = np.argsort(-scores, kind="stable")[:count]
    return archs[order].tolist()

