"""Weight-sharing methods of the size space (nats-sss): the three strategies NATS-Bench compares.

alpha is (layers x widths): per layer, logits over the 8 candidate widths.

| method      | a search step sees                                         | alpha learns from                       |
|-------------|------------------------------------------------------------|-----------------------------------------|
| tas         | per layer 2 widths drawn from softmax(alpha), their outputs | the Gumbel weights' gradient (Eq. 3.12) |
|             | aligned by channel-wise interpolation, Gumbel-weighted      |                                         |
| mask-gumbel | per layer the Gumbel-softmax mixture of the 8 prefix masks  | the mixture's gradient (FBNet-V2)       |
| mask-sample | per layer 1 width sampled from softmax(alpha) (a hard mask) | REINFORCE, reward = validation accuracy |
|             |                                                             | of the sample (TuNAS)                   |

Decisions (METHODS.md 2.6, 8.5, 11.5), the same for all three so they compare:
- the NATS-Bench weight-sharing recipe for the weights and Adam 3e-4 (betas 0.5, 0.999,
  wd 1e-3) for alpha, no FLOPs/params cost term (NATS-Bench ran them unconstrained);
  tas takes TAS' optional FLOPs target (`flops_target` R in MFLOPs: L_val + 2 * L_cost,
  tolerance 5 %, Eq. 3.14-3.15), with E_cost the exact expected FLOPs of `size_cost.py`;
- the Gumbel temperature falls linearly from 10 to 0.1 over the search (TAS' schedule);
- TAS draws its two widths without replacement (with one distinct width the renormalised
  weight is the constant 1 and alpha learns nothing);
- mask-sample's baseline is an exponential moving average of the reward, decay 0.95;
- warm-up (`warmup_ratio`): during the first `warmup_ratio` of the epochs the weights train
  the widest network alone and alpha stays as initialised;
- the derived architecture is the argmax width per layer (the `alpha` selection).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from trainables.weight_sharing.methods import Batch, Method, gdas_tau, gumbel_noise, gumbel_softmax

if TYPE_CHECKING:
    from trainables.weight_sharing.search import SupernetSearch


def sample_width_pairs(alpha: torch.Tensor, tau: float, generator: torch.Generator) -> list:
    """TAS per layer: two distinct widths drawn from softmax(alpha) and their renormalised Gumbel weights.

    The weights of the pair are softmax over the two of (log P + o) / tau (Eq. 3.12), so
    alpha's gradient flows through them when `alpha` requires it.
    """
    log_probs = F.log_softmax(alpha, dim=-1)
    noisy = (log_probs + gumbel_noise(alpha, generator)) / tau
    chosen = torch.multinomial(log_probs.detach().exp(), 2, replacement=False, generator=generator)
    pairs = []
    for layer, (i, j) in enumerate(chosen.tolist()):
        pairs.append(((i, j), F.softmax(noisy[layer, [i, j]], dim=-1)))
    return pairs


class SizeMethod(Method):
    """A size-space method: annealed temperature and the optional warm-up of the widest network."""

    space = "nats-sss"

    def __init__(self, search: "SupernetSearch") -> None:
        super().__init__(search)
        self.tau = search.recipe.tau_max
        self.warming = False

    def start_epoch(self, epoch: int) -> None:
        recipe = self.search.recipe
        self.tau = gdas_tau(epoch, recipe.epochs, recipe.tau_max, recipe.tau_min)
        self.warming = epoch < recipe.warmup_ratio * recipe.epochs

    def alpha(self, differentiable: bool) -> torch.Tensor:
        """alpha itself when its gradient should flow, else a detached copy."""
        return self.search.alpha if differentiable else self.search.alpha.detach()

    def widest(self) -> list[int]:
        layers, widths = self.search.supernet.shape
        return [widths - 1] * layers

    def weights_forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.warming:
            return self.search.supernet(x, indices=self.widest())
        return super().weights_forward(x)

    def arch_step(self, train: Batch, valid: Batch) -> None:
        if not self.warming:
            super().arch_step(train, valid)


class Tas(SizeMethod):
    """TAS: channel-wise interpolation of two sampled widths per layer; optionally a FLOPs target."""

    name = "tas"

    def __init__(self, search: "SupernetSearch") -> None:
        super().__init__(search)
        self.cost = None
        if search.recipe.flops_target is not None:
            from autohas.models.size_cost import WidthCost

            self.cost = WidthCost(search.spec.num_classes, search.spec.image_size)

    def arch_loss(self, valid: Batch) -> torch.Tensor:
        """The validation loss, plus lambda * L_cost when a FLOPs target is set (Eq. 3.14)."""
        loss = super().arch_loss(valid)
        if self.cost is None:
            return loss
        from autohas.models.size_cost import cost_loss

        recipe = self.search.recipe
        return loss + recipe.cost_weight * cost_loss(self.cost, self.search.alpha, recipe.flops_target, recipe.cost_tolerance)

    def arch_kwargs(self, differentiable: bool) -> dict:
        return {"pairs": sample_width_pairs(self.alpha(differentiable), self.tau, self.search.generator)}


class MaskGumbel(SizeMethod):
    """Masking + Gumbel-softmax (FBNet-V2): the prefix masks mixed by Gumbel-softmax weights."""

    name = "mask-gumbel"

    def arch_kwargs(self, differentiable: bool) -> dict:
        return {"weights": gumbel_softmax(self.alpha(differentiable), self.tau, self.search.generator)}


class MaskSample(SizeMethod):
    """Masking + sampling (TuNAS): one width per layer from softmax(alpha); alpha by REINFORCE."""

    name = "mask-sample"

    def __init__(self, search: "SupernetSearch") -> None:
        super().__init__(search)
        self.baseline: float | None = None

    def arch_kwargs(self, differentiable: bool) -> dict:
        return {"indices": self.sample_candidate()}

    def arch_step(self, train: Batch, valid: Batch) -> None:
        if self.warming:
            return
        search = self.search
        x, y = valid
        choices = self.sample_candidate()
        with torch.no_grad():
            reward = float((search.supernet(x, indices=choices).argmax(dim=1) == y).float().mean())
        decay = search.recipe.rl_baseline_decay
        self.baseline = reward if self.baseline is None else decay * self.baseline + (1 - decay) * reward
        log_probs = F.log_softmax(search.alpha, dim=-1)
        rows = torch.arange(len(choices), device=log_probs.device)
        log_prob = log_probs[rows, torch.tensor(choices, device=log_probs.device)].sum()
        (gradient,) = torch.autograd.grad(-(reward - self.baseline) * log_prob, search.alpha)
        self._alpha_step(gradient)

    def state_dict(self) -> dict:
        return {"baseline": self.baseline}

    def load_state_dict(self, state: dict) -> None:
        self.baseline = state["baseline"]


SIZE_METHODS: dict[str, type[Method]] = {m.name: m for m in (Tas, MaskGumbel, MaskSample)}
