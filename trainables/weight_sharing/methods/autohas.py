"""AutoHAS: one set of supernet weights shared by all architectures AND hyperparameters.

Per step (METHODS.md 3.3-3.4): hard Gumbel-softmax samples one op per edge and one basis
value of the learning rate and of the weight decay (Eqs. 4.6-4.8: the noise added to the
softmax probabilities, tau = 10 fixed; `noise_on="log-probabilities"` adds it to the
log-probabilities, as GDAS, which the thesis does not); the weights take one SGD step with the sampled
hyperparameters; then one Adam step (lr 0.002) on a validation batch moves the
architecture and hyperparameter logits by straight-through gradients.

Hyperparameter gradient (the derived form of METHODS.md 3.4, for the optimiser we really
use). With momentum SGD the step is  W' = W - lr * [c (g + wd W) + mu^2 buf]  (c = 1 + mu
with Nesterov, else 1), so the weights each basis value would have produced are, for the
learning rate, W'_i = W - (lr_i / lr) u with u = W - W' the step taken, and for the weight
decay W'_j = W' - lr c (wd_j - wd) W. Hence, with G = dL_val/dW' on the validation batch,

    dL/dP_lr_i = -(lr_i / lr) <G, u> + const,     dL/dP_wd_j = -lr c wd_j <G, W> + const,

and the constants cancel in the softmax. The momentum buffer is shared by all bases
(it holds the steps actually taken). Decisions: the train and the validation step use the
same architecture sample (the update is judged under the architecture that made it); Adam
uses its default betas, without weight decay.

The learning-rate basis is built around the search's default learning rate at each step
(the weight-sharing cosine, which is H0's 0.1 scaled to the search batch), as the thesis
does for a model with a default schedule. Derived (Eq. 4.10): the architecture by argmax,
the weight decay by its expected value, and the learning rate by its expected value at
every step: a schedule, reported in H0 units (batch 256) for re-training.

`autohas-hp` searches the hyperparameters only, the architecture fixed to the ResNet-like cell.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autohas.spaces.nats_tss import OPERATIONS
from autohas.spaces.has import DEFAULT_WEIGHT_DECAY, MULTIPLIERS, REFERENCE_BATCH
from autohas.trainables.weight_sharing.methods.base import Batch, Method, MethodContext, Settings, clip_gradients, resnet_cell
from autohas.trainables.weight_sharing.methods.draws import gumbel_straight_through

NOISE_ON = ("probabilities", "log-probabilities")


@dataclass(frozen=True)
class AutoHasSettings(Settings):
    """AutoHAS' optimiser, its fixed temperature, and where the Gumbel noise goes: on the
    probabilities, as the thesis' Eq. 4.7 (the default), or on the log-probabilities, as GDAS."""

    lr: float = 0.002  # Adam on the architecture and hyperparameter logits
    tau: float = 10.0
    noise_on: str = "probabilities"

    def __post_init__(self) -> None:
        if self.noise_on not in NOISE_ON:
            raise ValueError(f"noise_on must be one of {', '.join(NOISE_ON)}, not {self.noise_on!r}")

def expected(logits: torch.Tensor, values: torch.Tensor) -> float:
    """Eq. 4.10 for a continuous hyperparameter: the basis' expectation under softmax(logits)."""
    return float((F.softmax(logits.detach(), dim=-1) * values).sum())


def compress(schedule: list[float], points: int) -> list[float]:
    """At most `points` values: block means of a long per-step schedule (shape kept)."""
    if len(schedule) <= points:
        return list(schedule)
    return [float(block.mean()) for block in np.array_split(np.asarray(schedule, dtype=np.float64), points)]


class AutoHas(Method):
    """Joint architecture and hyperparameter search (arch + learning rate + weight decay)."""

    name = "autohas"
    Settings = AutoHasSettings
    searches_arch = True

    def __init__(self, context: MethodContext, settings: AutoHasSettings | None = None) -> None:
        super().__init__(context, settings)
        r = context.recipe
        init = torch.Generator().manual_seed(context.seed + 1)
        size = len(MULTIPLIERS)
        self.lr_logits = nn.Parameter((torch.randn(size, generator=init) * 1e-3).to(context.device))
        self.wd_logits = nn.Parameter((torch.randn(size, generator=init) * 1e-3).to(context.device))
        self.multipliers = torch.tensor(MULTIPLIERS, dtype=torch.float32, device=context.device)
        self.wd_basis = self.multipliers * DEFAULT_WEIGHT_DECAY
        params = [self.lr_logits, self.wd_logits] + ([context.alpha] if self.searches_arch else [])
        self.optimizer = torch.optim.Adam(params, lr=self.settings.lr)
        self.to_h0 = REFERENCE_BATCH / r.batch_size  # search-batch learning rates -> H0 units
        self.fixed = None if self.searches_arch else [OPERATIONS.index(op) for op in resnet_cell()]
        self.schedule: list[float] = []  # derived learning rate (H0 units) after every step
        self.epoch_ends: list[int] = []  # len(schedule) at the end of each epoch

    def lr_basis(self) -> torch.Tensor:
        """This step's learning-rate basis: the search's default learning rate x MULTIPLIERS."""
        return self.multipliers * self.context.lr

    def _sample(self, logits: torch.Tensor) -> tuple[torch.Tensor, int]:
        hard, index = self.straight_through(logits.unsqueeze(0))
        return hard[0], index[0]

    def straight_through(self, logits: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """The hard sample per row and its straight-through weights (Eqs. 4.6-4.8)."""
        s = self.settings
        return gumbel_straight_through(logits, s.tau, self.context.generator, noise_on=s.noise_on)

    def arch_kwargs(self, differentiable: bool) -> dict:
        if self.fixed is not None:
            return {"indices": self.fixed}
        alpha = self.context.alpha if differentiable else self.context.alpha.detach()
        hard, indices = self.straight_through(alpha)
        return {"weights": hard, "indices": indices} if differentiable else {"indices": indices}

    def step(self, train: Batch, valid: Batch) -> float:
        context, r = self.context, self.context.recipe
        (xt, yt), (xv, yv) = train, valid
        arch = self.arch_kwargs(True)
        lr_hard, lr_index = self._sample(self.lr_logits)
        wd_hard, wd_index = self._sample(self.wd_logits)
        lrs, wds = self.lr_basis(), self.wd_basis
        lr, wd = float(lrs[lr_index]), float(wds[wd_index])

        params = list(context.supernet.parameters())
        before = [p.detach().clone() for p in params]
        for group in context.w_optimizer.param_groups:
            group["lr"], group["weight_decay"] = lr, wd
        context.w_optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(context.supernet(xt, indices=arch["indices"]), yt)
        loss.backward()
        clip_gradients(params, r.grad_clip)
        context.w_optimizer.step()

        wrt = ([context.alpha] if self.searches_arch else []) + params
        grads = torch.autograd.grad(F.cross_entropy(context.supernet(xv, **arch), yv), wrt, allow_unused=True)
        alpha_grad, weight_grads = (grads[0], grads[1:]) if self.searches_arch else (None, grads)
        moved = sum((g * (b - p.detach())).sum() for g, b, p in zip(weight_grads, before, params) if g is not None)
        against = sum((g * b).sum() for g, b in zip(weight_grads, before) if g is not None)
        c = 1.0 + r.momentum if (r.nesterov and r.momentum > 0) else 1.0
        lr_grad = -(lrs / lr) * moved
        wd_grad = -lr * c * wds * against
        surrogate = (lr_hard * lr_grad.detach()).sum() + (wd_hard * wd_grad.detach()).sum()
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_logits.grad, self.wd_logits.grad = torch.autograd.grad(surrogate, [self.lr_logits, self.wd_logits])
        if alpha_grad is not None:
            context.alpha.grad = alpha_grad
        self.optimizer.step()
        self.schedule.append(expected(self.lr_logits, self.lr_basis()) * self.to_h0)
        return float(loss.detach())

    def end_epoch(self) -> None:
        self.epoch_ends.append(len(self.schedule))

    def fixed_indices(self) -> list[int] | None:
        return self.fixed

    def derived_weight_decay(self) -> float:
        return expected(self.wd_logits, self.wd_basis)

    def hparams(self) -> dict:
        """The derived hyperparameters: the mean learning rate (H0 units) of each epoch so far, and the weight decay."""
        starts = [0, *self.epoch_ends[:-1]]
        per_epoch = [float(np.mean(self.schedule[a:b])) for a, b in zip(starts, self.epoch_ends) if b > a]
        return {"lr_per_epoch": per_epoch, "weight_decay": self.derived_weight_decay()}

    def training_hparams(self, points: int = 1000) -> dict:
        """What re-training uses: the learning-rate schedule (H0 units, over the run) and the weight decay."""
        return {"lr_schedule": tuple(compress(self.schedule, points)), "weight_decay": self.derived_weight_decay()}

    def state_dict(self) -> dict:
        return {
            "lr_logits": self.lr_logits.detach().cpu(),
            "wd_logits": self.wd_logits.detach().cpu(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": list(self.schedule),
            "epoch_ends": list(self.epoch_ends),
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.lr_logits.copy_(state["lr_logits"].to(self.context.device))
            self.wd_logits.copy_(state["wd_logits"].to(self.context.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule = list(state["schedule"])
        self.epoch_ends = list(state["epoch_ends"])


class AutoHasHp(AutoHas):
    """AutoHAS on the hyperparameters only: the architecture is fixed to the ResNet-like cell."""

    name = "autohas-hp"
    searches_arch = False
    uses_alpha = False
