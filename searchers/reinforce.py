"""REINFORCE over a factorised policy, with the NATS-Bench settings.

The policy is one independent softmax per decision (logits initialised to 1e-3 *
N(0, 1)). Each finished evaluation updates it with Adam (lr 0.01) on
`-log p(arch) * (reward - baseline)`, where the baseline is a bias-corrected
exponential moving average (momentum 0.9) of the rewards that already includes the
current one, as in the NATS-Bench code. Reward = the search signal.

Sampling uses the searcher's numpy generator. The update is numpy, in float64: the
gradient of `-log softmax(logits)[chosen] * advantage` is `advantage * (softmax - onehot)`,
and Adam is torch.optim.Adam's step with its defaults (betas 0.9, 0.999, eps 1e-8), so
that a run needs no torch; tests/test_searcher_speedups.py checks both against torch's
autograd and Adam. The initial logits are the numbers `torch.randn(n, generator=
torch.Generator().manual_seed(seed), dtype=torch.float64)` gives, one call per decision,
drawn here without torch (see `torch_randn`). With several evaluations in flight, an
update uses the policy as it is when the result arrives.
"""
from __future__ import annotations

import math

import numpy as np

from autohas.spaces import Space
from autohas.searchers.base import SpaceSearcher

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
ADAM_EPS = 1e-8
_SERIAL_NORMAL_BELOW = 16  # torch draws a CPU tensor of fewer elements one Box-Muller pair at a time


def torch_randn(seed: int, sizes: list[int]) -> list[np.ndarray]:
    """`[torch.randn(n, generator=g, dtype=torch.float64) for n in sizes]` for `g =
    torch.Generator().manual_seed(seed)`, as float64 arrays, computed without torch.

    torch's CPU generator is a Mersenne Twister seeded as `init_genrand(seed & 0xffffffff)` (numpy's
    legacy MT19937 seeding); a float64 tensor of fewer than 16 elements is filled one element at a
    time by Box-Muller: u = (two 32-bit outputs, the first high) & (2^53 - 1) / 2^53 for u1 and then
    u2, r = sqrt(-2 log1p(-u2)), theta = 2 pi u1; the element is r cos(theta) and r sin(theta) is
    kept for the generator's next normal draw, across calls. Python's math calls the same C library
    functions as torch's kernel. Sizes of 16 or more take torch's vectorised path: torch computes them.
    """
    if any(n >= _SERIAL_NORMAL_BELOW for n in sizes):
        import torch

        generator = torch.Generator().manual_seed(int(seed))
        return [torch.randn(n, generator=generator, dtype=torch.float64).numpy() for n in sizes]
    bits = np.random.MT19937()
    bits._legacy_seeding(int(seed) & 0xFFFFFFFF)
    total = sum(sizes)
    raw = [int(word) for word in bits.random_raw(4 * ((total + 1) // 2))]
    mask, scale = (1 << 53) - 1, 1.0 / (1 << 53)
    normals: list[float] = []
    for k in range(0, len(raw), 4):
        u1 = (((raw[k] << 32) | raw[k + 1]) & mask) * scale
        u2 = (((raw[k + 2] << 32) | raw[k + 3]) & mask) * scale
        radius, theta = math.sqrt(-2.0 * math.log1p(-u2)), 2.0 * math.pi * u1
        normals += [radius * math.cos(theta), radius * math.sin(theta)]
    out, start = [], 0
    for n in sizes:
        out.append(np.array(normals[start : start + n], dtype=np.float64))
        start += n
    return out


class Reinforce(SpaceSearcher):
    def __init__(self, space: Space, seed: int, learning_rate: float = 0.01, momentum: float = 0.9, **kwargs):
        super().__init__(space, seed, **kwargs)
        sizes = [len(d.choices) for d in space.decisions]
        # the logits of every decision in one float64 vector; decision i owns [offsets[i], offsets[i + 1])
        self.logits = np.concatenate([1e-3 * draw for draw in torch_randn(seed, sizes)])
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.learning_rate = learning_rate
        self.adam_step = 0
        self.exp_avg = np.zeros_like(self.logits)
        self.exp_avg_sq = np.zeros_like(self.logits)
        self.momentum = momentum
        self._ema_sum = 0.0
        self._ema_weight = 0.0
        self._choice_index = [{c: i for i, c in enumerate(d.choices)} for d in space.decisions]

    def _slots(self) -> np.ndarray:
        """Where each logit sits in a table of one row per decision, as wide as the widest."""
        sizes = np.diff(self.offsets)
        return np.arange(int(sizes.max())) < sizes[:, None]

    def _table(self) -> np.ndarray:
        """The logits as one row per decision, padded with -inf (probability 0)."""
        slots = self._slots()
        table = np.full(slots.shape, -np.inf)
        table[slots] = self.logits
        return table

    def _softmax(self) -> np.ndarray:
        """softmax(logits) of each decision, as rows (padding: 0)."""
        table = self._table()
        shifted = np.exp(table - table.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def probabilities(self) -> list[np.ndarray]:
        """softmax(logits) of each decision."""
        return [row[:n] for row, n in zip(self._softmax(), np.diff(self.offsets).tolist())]

    def propose(self) -> str:
        """One choice per decision drawn from its softmax with `Generator.choice(n, p=p / p.sum())`'s
        arithmetic and its one uniform draw each: the first index whose cumulative probability
        (normalised by the last) exceeds the draw."""
        probs = self._softmax()
        cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
        cdf /= cdf[:, -1:]  # (the padding repeats the last cumulative value)
        uniforms = self.rng.random(len(self.space.decisions))
        chosen = (cdf <= uniforms[:, None]).sum(axis=1).tolist()
        return self.space.encode(tuple(d.choices[c] for d, c in zip(self.space.decisions, chosen)))

    @property
    def baseline(self) -> float:
        return self._ema_sum / self._ema_weight if self._ema_weight else 0.0

    def observe(self, arch: str, score: float) -> None:
        self._ema_sum = self.momentum * self._ema_sum + (1 - self.momentum) * score
        self._ema_weight = self.momentum * self._ema_weight + (1 - self.momentum)
        advantage = score - self.baseline
        chosen = [lookup[v] for lookup, v in zip(self._choice_index, self.space.decode(arch))]
        self._adam(self.gradient(chosen, advantage))

    def gradient(self, chosen: list[int], advantage: float) -> np.ndarray:
        """d/dlogits of -advantage * sum_i log softmax(logits_i)[chosen_i]: advantage * (softmax - onehot)."""
        grad = self._softmax()[self._slots()] * advantage
        grad[self.offsets[:-1] + np.asarray(chosen, dtype=int)] -= advantage
        return grad

    def _adam(self, grad: np.ndarray) -> None:
        """torch.optim.Adam's step (no weight decay, no amsgrad), in its order of operations."""
        beta1, beta2 = ADAM_BETAS
        self.adam_step += 1
        self.exp_avg += (1 - beta1) * (grad - self.exp_avg)
        self.exp_avg_sq *= beta2
        self.exp_avg_sq += (1 - beta2) * grad * grad
        step = float(self.adam_step)
        step_size = self.learning_rate / (1 - beta1**step)
        denom = np.sqrt(self.exp_avg_sq) / (1 - beta2**step) ** 0.5 + ADAM_EPS
        self.logits += -step_size * self.exp_avg / denom

    def set_state(self, state: dict) -> None:
        """A state saved by the torch version of this searcher (torch Parameters and an Adam optimizer)
        continues as the same numpy policy."""
        if "optimizer" in state:
            state = _from_torch_state(state)
        super().set_state(state)
        self._choice_index = [{c: i for i, c in enumerate(d.choices)} for d in self.space.decisions]


def _from_torch_state(state: dict) -> dict:
    """The numpy fields of a Reinforce state that holds `logits` as torch Parameters and `optimizer`."""
    state = dict(state)
    logits, optimizer = state.pop("logits"), state.pop("optimizer")
    sizes = [int(p.numel()) for p in logits]
    adam = [optimizer.state.get(p, {}) for p in logits]
    state["logits"] = np.concatenate([p.detach().numpy().astype(np.float64) for p in logits])
    state["offsets"] = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    state["learning_rate"] = float(optimizer.param_groups[0]["lr"])
    state["adam_step"] = int(float(adam[0]["step"])) if adam[0] else 0
    for key in ("exp_avg", "exp_avg_sq"):
        state[key] = np.concatenate([s[key].numpy().astype(np.float64) if s else np.zeros(n)
                                     for s, n in zip(adam, sizes)])
    return state
