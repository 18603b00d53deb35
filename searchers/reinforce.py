"""REINFORCE over a factorised policy, with the NATS-Bench settings.

The policy is one independent softmax per decision (logits initialised to 1e-3 *
N(0, 1)). Each finished evaluation updates it with Adam (lr 0.01) on
`-log p(arch) * (reward - baseline)`, where the baseline is a bias-corrected
exponential moving average (momentum 0.9) of the rewards that already includes the
current one, as in the NATS-Bench code. Reward = the search metric.

Sampling uses the searcher's numpy generator, the gradient uses torch; with several
evaluations in flight, an update uses the policy as it is when the result arrives.
"""
from __future__ import annotations

import numpy as np
import torch

from autohas.spaces import Space
from autohas.searchers.base import SpaceSearcher


class Reinforce(SpaceSearcher):
    def __init__(self, space: Space, seed: int, learning_rate: float = 0.01, momentum: float = 0.9, **kwargs):
        super().__init__(space, seed, **kwargs)
        generator = torch.Generator().manual_seed(int(seed))
        self.logits = [
            torch.nn.Parameter(1e-3 * torch.randn(len(d.choices), generator=generator, dtype=torch.float64))
            for d in space.decisions
        ]
        self.optimizer = torch.optim.Adam(self.logits, lr=learning_rate)
        self.momentum = momentum
        self._ema_sum = 0.0
        self._ema_weight = 0.0

    def probabilities(self) -> list[np.ndarray]:
        with torch.no_grad():
            return [torch.softmax(logit, dim=0).numpy() for logit in self.logits]

    def propose(self) -> str:
        genotype = []
        for decision, probs in zip(self.space.decisions, self.probabilities()):
            choice = int(self.rng.choice(len(probs), p=probs / probs.sum()))
            genotype.append(decision.choices[choice])
        return self.space.encode(tuple(genotype))

    @property
    def baseline(self) -> float:
        return self._ema_sum / self._ema_weight if self._ema_weight else 0.0

    def observe(self, arch: str, score: float) -> None:
        self._ema_sum = self.momentum * self._ema_sum + (1 - self.momentum) * score
        self._ema_weight = self.momentum * self._ema_weight + (1 - self.momentum)
        advantage = score - self.baseline
        chosen = [d.choices.index(v) for d, v in zip(self.space.decisions, self.space.decode(arch))]
        log_prob = sum(torch.log_softmax(logit, dim=0)[c] for logit, c in zip(self.logits, chosen))
        self.optimizer.zero_grad()
        (-log_prob * advantage).backward()
        self.optimizer.step()
