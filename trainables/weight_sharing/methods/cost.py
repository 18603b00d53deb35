"""Cost targets of an architecture distribution: TAS' cost loss, for FLOPs (tas) and latency (nats-tss methods).

TAS (thesis Eq. 3.14-3.15) adds lambda * L_cost to the architecture's validation loss, with
L_cost = log E_cost if the argmax architecture costs more than (1 + t) R, -log E_cost if less than
(1 - t) R, else 0; E_cost is the expected cost under the distribution softmax(alpha). `cost_loss`
is that term, once, for any cost that says what one architecture costs (`of_tensor`, looked up on
the device) and what the distribution costs in expectation, differentiably (`expected`):
`WidthCost` (exact FLOPs of sss widths, `autohas/models/size_cost.py`) for tas' --flops-target,
`LatencyCost` for --latency-target.

`LatencyCost` is FBNet's latency loss in TAS' form: E_cost is the additive per-op model fitted to a
latency table's device column (`autohas.latency.fit_additive_model`) at the per-edge probabilities,
F_cost (the argmax cell's) is the table's measured latency. The fitted model's intercept may be
negative (pixel3: -2.19 ms), so a distribution piled on `none` could give E_cost <= 0, whose log is
undefined: E_cost is floored at the table's fastest cell (no cell runs faster), where the term
stops pushing. Every supported method's distribution is softmax(alpha) (GDAS' Gumbel-max samples
draw exactly from it; DARTS, SETN, SANAS and LeaSE mix by it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from autohas.latency import AdditiveLatencyModel

COST_WEIGHT = 2.0  # TAS' lambda_cost (thesis 3.3: 2)
COST_TOLERANCE = 0.05  # TAS' t (5 %)


class Cost(Protocol):
    """What TAS' cost loss needs of a cost."""

    def of_tensor(self, indices: torch.Tensor) -> torch.Tensor:
        """The cost of the architecture with choice indices[d] in decision d, a float64 scalar on their device."""

    def expected(self, probs: torch.Tensor) -> torch.Tensor:
        """Its expectation when decision d takes choice o with probability probs[d, o], differentiable."""


def cost_loss(cost: Cost, alpha: torch.Tensor, target: float, tolerance: float) -> torch.Tensor:
    """TAS' L_cost (Eq. 3.15): log E_cost if the argmax architecture costs over (1+t) R, -log E_cost
    if under (1-t) R, else 0; R = `target` (the cost's unit), t = `tolerance`, E_cost under softmax(alpha)."""
    low, high = (1 - tolerance) * target, (1 + tolerance) * target
    current = cost.of_tensor(alpha.detach().argmax(dim=-1))  # decided on alpha's device: no host round trip per step
    expected = cost.expected(torch.softmax(alpha, dim=-1)).log().to(alpha.dtype)
    return torch.where(current > high, expected, torch.where(current < low, -expected, alpha.sum() * 0.0))


@dataclass(frozen=True, eq=False)
class LatencyCost:
    """Latency (ms) of nats-tss cells on one device: `of` the table's measured value of a cell (op index
    per edge, the supernet's order, which is the space's decision order), `expected` the additive model's
    expectation (floored at the fastest cell)."""

    model: AdditiveLatencyModel
    table: np.ndarray  # ms by official index
    floor: float  # the table's fastest cell
    # per device: (the table by mixed-radix code of the op indices, each decision's place value), built once
    _on_device: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def of(self, indices: Sequence[int]) -> float:
        space = self.model.space
        return float(self.table[space.arch_to_index(space.encode(tuple(d.choices[int(i)] for d, i in zip(space.decisions, indices))))])

    def of_tensor(self, indices: torch.Tensor) -> torch.Tensor:
        """`of` as a float64 scalar tensor on `indices`' device, looked up there (the per-step cost loss
        then never waits for the device to hand the argmax cell to the host)."""
        if indices.device not in self._on_device:
            counts = [len(d.choices) for d in self.model.space.decisions]
            by_code = [self.of(cell) for cell in product(*(range(n) for n in counts))]  # the last decision varies fastest
            places = [int(np.prod(counts[d + 1:])) for d in range(len(counts))]
            self._on_device[indices.device] = (torch.tensor(by_code, dtype=torch.float64, device=indices.device),
                                               torch.tensor(places, dtype=torch.int64, device=indices.device))
        by_code, places = self._on_device[indices.device]
        return by_code[(indices.to(torch.int64) * places).sum()]

    def expected(self, probs: torch.Tensor) -> torch.Tensor:
        p = probs.to(torch.float64)
        return self.model.expected(p).clamp_min(self.floor)


@lru_cache(maxsize=4)
def latency_cost(table: str, device: str, space: str = "nats-tss") -> LatencyCost:
    """The latency cost of a table's device column: the additive model fitted once per process."""
    from autohas.latency import fit_additive_model, latencies
    from autohas.spaces import get_space

    values = latencies(table, device, space)
    return LatencyCost(fit_additive_model(get_space(space), values), values, float(values.min()))


def cost_term(cost: Cost, target: float, weight: float = COST_WEIGHT, tolerance: float = COST_TOLERANCE
              ) -> Callable[[torch.Tensor], torch.Tensor]:
    """lambda * L_cost as a function of alpha: what the architecture update adds to its loss."""
    return lambda alpha: weight * cost_loss(cost, alpha, target, tolerance)
