"""Weight-sharing methods of the size space (nats-sss): the three strategies NATS-Bench compares.

alpha is (layers x widths): per layer, logits over the 8 candidate widths. As NATS-Bench's
search (AutoDL-Projects `exps/NATS-algos/search-size.py` over xautodl's `GenericNAS301Model`),
every forward draws afresh for each of the supernet's six shaped modules (the stem draws from
layer 0's row, apart from the first cell), every draw through the search's generator:

| method      | per module, a forward sees                                  | alpha learns from                     |
|-------------|-------------------------------------------------------------|---------------------------------------|
| tas         | 2 widths drawn from the tempered Gumbel probabilities       | the pair weights' gradient (Eq. 3.12) |
|             | softmax((log_softmax(alpha) + o) / tau) (`select2withP`),   |                                       |
|             | aligned by channel-wise interpolation, mixed by the pair's  |                                       |
|             | renormalised weights                                        |                                       |
| mask-gumbel | the Gumbel-softmax mixture of the 8 prefix masks            | the mixture's gradient (FBNet-V2)     |
| mask-sample | 1 width sampled from softmax(alpha) (a hard mask)           | REINFORCE (`mask_rl`, TuNAS)          |

Settings as the reference's: alpha by Adam (lr 3e-4, betas (0.5, 0.999), eps 1e-8, weight
decay 1e-3; mask-sample 0, as its command lines); the Gumbel temperature falls linearly from
10 to 0.1 over the epochs; mask-sample's reward is the sample's top-1 accuracy in percent on
the validation batch, its baseline the bias-corrected exponential moving average (0.95) of
the rewards including the current one (updated in the warm-up too); warm-up (`warmup_ratio`
r of T epochs): while r > e / T the architecture is frozen and each module of each forward
(weight and validation batch) takes the widest width with probability 1 - e / (T r), else a
uniformly random one. No FLOPs term unless `flops_target` is set (TAS' optional cost loss,
L_val + lambda L_cost, tolerance t, Eq. 3.14-3.15, `cost.py`'s `cost_loss`; E_cost exact by `size_cost.py`). The
derived architecture is the argmax width per layer (the `alpha` selection).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.distributions import Categorical

from autohas.trainables.weight_sharing.methods.base import Batch, Method, MethodContext
from autohas.trainables.weight_sharing.methods.cost import COST_TOLERANCE, COST_WEIGHT, cost_loss
from autohas.trainables.weight_sharing.methods.draws import gdas_tau
from autohas.trainables.weight_sharing.methods.gdas import GdasSettings

PAIR_EPS = 1e-7  # select2withP: added to the probabilities TAS draws its pair from


def tempered_gumbel(logits: torch.Tensor, tau: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """((log_softmax(logits) + o) / tau, its softmax) per row, o Gumbel noise redrawn while anything
    is not finite (tau <= 0: the logits and softmax(logits), no noise), as `select2withP`."""
    if tau <= 0:
        return logits, F.softmax(logits, dim=-1)
    while True:
        noise = -torch.empty_like(logits).exponential_(generator=generator).log()
        tempered = (F.log_softmax(logits, dim=-1) + noise) / tau
        probs = F.softmax(tempered, dim=-1)
        if torch.isfinite(noise).all() and torch.isfinite(probs).all():
            return tempered, probs


def sample_width_pairs(alpha: torch.Tensor, tau: float, generator: torch.Generator, rows: Sequence[int] | None = None) -> list:
    """TAS: for each row of alpha named in `rows` (default: every row), one draw of two distinct widths
    from the tempered Gumbel probabilities and their weights, softmax of the pair's tempered logits;
    alpha's gradient flows through the weights when `alpha` requires it."""
    pairs = []
    for row in range(alpha.shape[0]) if rows is None else rows:
        tempered, probs = tempered_gumbel(alpha[row : row + 1], tau, generator)
        with torch.no_grad():
            chosen = torch.multinomial(probs + PAIR_EPS, 2, replacement=False, generator=generator)
        weights = F.softmax(tempered.gather(1, chosen), dim=1)[0]
        pairs.append((tuple(chosen[0].tolist()), weights))
    return pairs


def top1_percent(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in percent of a batch, computed as the reference's `obtain_accuracy`."""
    correct = logits.topk(1, 1, True, True)[1].t().eq(y.view(1, -1))
    return float(correct.reshape(-1).float().sum() * (100.0 / y.shape[0]))


class MovingAverage:
    """The bias-corrected exponential moving average of the reference's mask_rl baseline."""

    def __init__(self, momentum: float) -> None:
        self.momentum, self.numerator, self.denominator = momentum, 0.0, 0.0

    def update(self, value: float) -> None:
        self.numerator = self.momentum * self.numerator + (1 - self.momentum) * value
        self.denominator = self.momentum * self.denominator + (1 - self.momentum)

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


@dataclass(frozen=True)
class SizeSettings(GdasSettings):
    """The annealed temperature (as GDAS') and the reference's warm-up."""

    warmup_ratio: float = 0.0  # the first fraction of epochs: the architecture frozen, mostly the widest network


@dataclass(frozen=True)
class TasSettings(SizeSettings):
    """TAS' optional cost loss (Eq. 3.14-3.15); no target: none, as NATS-Bench ran it."""

    flops_target: float | None = None  # R, the target MFLOPs
    cost_weight: float = COST_WEIGHT  # lambda_cost
    cost_tolerance: float = COST_TOLERANCE  # t


@dataclass(frozen=True)
class MaskSampleSettings(SizeSettings):
    """mask-sample's REINFORCE baseline."""

    baseline_decay: float = 0.95  # its bias-corrected moving average


class SizeMethod(Method):
    """A size-space method: the annealed temperature, the reference's warm-up, draws per shaped module."""

    space = "nats-sss"
    Settings = SizeSettings
    ARCH_WEIGHT_DECAY: float | None = None  # alpha's Adam weight decay; None: the recipe's arch_weight_decay

    def __init__(self, context: MethodContext, settings: SizeSettings | None = None) -> None:
        super().__init__(context, settings)
        self.tau = self.settings.tau_max
        self.warming = False
        self.widest_probability = 1.0  # in the warm-up: the chance of the widest width per module and forward
        if self.ARCH_WEIGHT_DECAY is not None:
            for group in context.a_optimizer.param_groups:
                group["weight_decay"] = self.ARCH_WEIGHT_DECAY

    def start_epoch(self, epoch: int) -> None:
        s, epochs = self.settings, self.context.recipe.epochs
        self.tau = gdas_tau(epoch, epochs, s.tau_max, s.tau_min)
        ratio = s.warmup_ratio
        self.warming = bool(ratio) and ratio > float(epoch) / epochs  # search-size.py's test, exactly
        self.widest_probability = 1.0 - float(epoch) / epochs / ratio if self.warming else 1.0

    def alpha(self, differentiable: bool) -> torch.Tensor:
        """alpha itself when its gradient should flow, else a detached copy."""
        return self.context.alpha if differentiable else self.context.alpha.detach()

    @property
    def module_layers(self) -> tuple[int, ...]:
        return self.context.supernet.module_layers

    def warmup_widths(self) -> list[int]:
        """Per shaped module: the widest width with probability `widest_probability`, else a uniform one."""
        generator = self.context.generator
        count = len(self.context.supernet.widths)
        widths = []
        for _ in self.module_layers:
            u = float(torch.rand((), generator=generator, device=generator.device, dtype=torch.float64))
            widest = u < self.widest_probability
            widths.append(count - 1 if widest else int(torch.randint(count, (), generator=generator, device=generator.device)))
        return widths

    def weights_forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.warming:
            return self.context.supernet(x, indices=self.warmup_widths())
        return super().weights_forward(x)

    def warmup_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The warm-up's forward on the validation batch: nothing learns, but the draws and the residual
        blocks' BN estimates move, as the reference's forward without its backward."""
        with torch.no_grad():
            return self.context.supernet(x, indices=self.warmup_widths())

    def arch_step(self, train: Batch, valid: Batch) -> None:
        if self.warming:
            self.warmup_forward(valid[0])
        else:
            super().arch_step(train, valid)


class Tas(SizeMethod):
    """TAS: channel-wise interpolation of two sampled widths per module; optionally a FLOPs target."""

    name = "tas"
    Settings = TasSettings

    def __init__(self, context: MethodContext, settings: TasSettings | None = None) -> None:
        super().__init__(context, settings)
        self.cost = None
        if self.settings.flops_target is not None:
            from autohas.models.size_cost import WidthCost

            self.cost = WidthCost(context.spec.num_classes, context.spec.image_size)

    def arch_loss(self, valid: Batch) -> torch.Tensor:
        """The validation loss, plus lambda * L_cost when a FLOPs target is set (Eq. 3.14)."""
        loss = super().arch_loss(valid)
        if self.cost is None:
            return loss
        s = self.settings
        return loss + s.cost_weight * cost_loss(self.cost, self.context.alpha, s.flops_target, s.cost_tolerance)

    def arch_kwargs(self, differentiable: bool) -> dict:
        return {"pairs": sample_width_pairs(self.alpha(differentiable), self.tau, self.context.generator, self.module_layers)}


class MaskGumbel(SizeMethod):
    """Masking + Gumbel-softmax (FBNet-V2): per module the prefix masks mixed by softmax((alpha + o) / tau)."""

    name = "mask-gumbel"

    def arch_kwargs(self, differentiable: bool) -> dict:
        alpha, generator = self.alpha(differentiable), self.context.generator
        rows = []
        for layer in self.module_layers:
            logits = alpha[layer : layer + 1]
            while True:  # F.gumbel_softmax's noise, redrawn in the (measure-zero) case of an infinite draw
                noise = -torch.empty_like(logits).exponential_(generator=generator).log()
                if torch.isfinite(noise).all():
                    break
            rows.append(F.softmax((logits + noise) / self.tau, dim=-1))
        return {"weights": torch.cat(rows)}


class MaskSample(SizeMethod):
    """Masking + sampling (TuNAS; the reference's mask_rl): per module one width from softmax(alpha);
    alpha by REINFORCE, loss -(reward - baseline) * sum of the sample's log-probabilities."""

    name = "mask-sample"
    Settings = MaskSampleSettings
    ARCH_WEIGHT_DECAY = 0.0  # search-size.py's mask_rl command lines: --arch_weight_decay 0

    def __init__(self, context: MethodContext, settings: MaskSampleSettings | None = None) -> None:
        super().__init__(context, settings)
        self.baseline = MovingAverage(self.settings.baseline_decay)

    def sample_modules(self, alpha: torch.Tensor) -> tuple[list[int], torch.Tensor]:
        """One width per shaped module and the sum of their log-probabilities (differentiable in `alpha`)."""
        choices, log_probs = [], []
        for layer in self.module_layers:
            distribution = Categorical(probs=F.softmax(alpha[layer : layer + 1], dim=-1))
            action = torch.multinomial(distribution.probs, 1, True, generator=self.context.generator).view(-1)
            log_probs.append(distribution.log_prob(action))
            choices.append(int(action))
        return choices, torch.cat(log_probs).sum()

    def arch_kwargs(self, differentiable: bool) -> dict:
        return {"indices": self.sample_modules(self.alpha(differentiable))[0]}

    def arch_step(self, train: Batch, valid: Batch) -> None:
        context = self.context
        x, y = valid
        if self.warming:  # the reference's baseline moves in the warm-up too
            self.baseline.update(top1_percent(self.warmup_forward(x), y))
            return
        choices, log_prob = self.sample_modules(context.alpha)
        with torch.no_grad():
            reward = top1_percent(context.supernet(x, indices=choices), y)
        self.baseline.update(reward)
        (gradient,) = torch.autograd.grad(-(reward - self.baseline.value) * log_prob, context.alpha)
        self._alpha_step(gradient)

    def state_dict(self) -> dict:
        return {"baseline": (self.baseline.numerator, self.baseline.denominator)}

    def load_state_dict(self, state: dict) -> None:
        self.baseline.numerator, self.baseline.denominator = state["baseline"]
