"""Selection criteria: how the discrete architecture is derived from a weight-sharing search.

- `alpha`: per edge, the op with the largest architecture parameter (DARTS, GDAS).
- `ostr`: operation strength (OStr-DARTS, Eq. 9-11): per edge, the op with the largest
  mean over the epoch's validation batches of |dL_val/d alpha_op|.
- `saliency`: architecture saliency, the squared loss change when the op is removed from
  its edge, to first order (Taylor): (beta_op * dL_val/d beta_op)^2, averaged over the
  epoch's validation batches (decision: removal = dropping its term from the mixture, no
  renormalisation; the mixing-weight form of METHODS.md section 6).
- `sampled`: the best of the method's `candidates` architectures (100), each scored by its
  accuracy on the next batch of a fresh pass over the shuffled validation split, at the
  evaluation batch size (RSPS, SETN, ENAS; the reference's `get_best_arch`).

The two gradient criteria take one extra forward/backward pass of the mixture on each
step's validation batch; both read the same gradient dL/d beta (beta = softmax(alpha)),
because dL/d alpha = beta * (dL/d beta - <beta, dL/d beta>).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterator, Protocol

import torch
import torch.nn.functional as F


class SearchView(Protocol):
    """What a criterion reads of the running search (`search.SupernetSearch`): declared here so that
    this module does not import the search loop that imports it."""

    alpha: torch.Tensor
    supernet: Any
    device: torch.device
    method: Any
    recipe: Any

    def beta(self) -> torch.Tensor: ...

    def controller_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def operation_strength(beta: torch.Tensor, grad_beta: torch.Tensor) -> torch.Tensor:
    """|dL/d alpha| per (edge, op) from the mixing weights and dL/d beta."""
    return (beta * (grad_beta - (beta * grad_beta).sum(dim=-1, keepdim=True))).abs()


def removal_saliency(beta: torch.Tensor, grad_beta: torch.Tensor) -> torch.Tensor:
    """First-order estimate of (L without the op - L)^2 per (edge, op)."""
    return (beta * grad_beta) ** 2


class Selection(ABC):
    """A selection criterion; subclasses say how `derive` picks one op per edge."""

    name = ""
    needs_alpha = True

    def __init__(self, search: SearchView) -> None:
        self.search = search

    def start_epoch(self) -> None:
        """Called before each search epoch."""

    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Called after each search step with that step's validation batch."""

    @abstractmethod
    def derive(self) -> list[int]:
        """The op index per edge of the architecture derived now."""


class AlphaSelection(Selection):
    name = "alpha"

    def derive(self) -> list[int]:
        return self.search.alpha.detach().argmax(dim=-1).tolist()


class GradientSelection(Selection):
    """Mean over an epoch's validation batches of a score computed from beta and dL/d beta."""

    score = staticmethod(operation_strength)

    def start_epoch(self) -> None:
        self.total = torch.zeros(self.search.supernet.shape, device=self.search.device)
        self.batches = 0

    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        beta = self.search.beta().detach().requires_grad_()
        loss = F.cross_entropy(self.search.supernet(x, weights=beta), y)
        (grad,) = torch.autograd.grad(loss, beta)
        self.total += self.score(beta.detach(), grad)
        self.batches += 1

    def scores(self) -> torch.Tensor:
        return self.total / max(1, self.batches)

    def derive(self) -> list[int]:
        if self.batches == 0:  # nothing observed yet (no step this epoch): fall back to alpha
            return AlphaSelection.derive(self)
        return self.scores().argmax(dim=-1).tolist()


class OperationStrength(GradientSelection):
    name = "ostr"
    score = staticmethod(operation_strength)


class Saliency(GradientSelection):
    name = "saliency"
    score = staticmethod(removal_saliency)


class SampledSelection(Selection):
    name = "sampled"
    needs_alpha = False

    def derive(self) -> list[int]:
        search = self.search
        candidates = search.method.candidates(search.recipe.candidates)
        batches = search.controller_batches()
        best, best_acc = None, -1.0
        for candidate in candidates:
            x, y = next(batches)
            with torch.no_grad():
                acc = float((search.supernet(x, indices=candidate).argmax(dim=1) == y).float().mean())
            if acc > best_acc:  # the first of equals, as numpy's argmax
                best, best_acc = candidate, acc
        return best


SELECTIONS: dict[str, type[Selection]] = {s.name: s for s in (AlphaSelection, OperationStrength, Saliency, SampledSelection)}
