"""SANAS and LeaSE: the architecture learns from how well its own saliency explanations teach.

Both are four-level problems approximated, as DARTS does, by one gradient step per level
(METHODS.md 4 and 5):

1. W1 (the searched supernet) takes one SGD step on a training batch with A fixed;
2. delta, the pixel saliency map of each image, is one projected ascent step of the
   cross-entropy between the prediction on x + delta and on x, inside ||delta||_inf <= eps;
3. a second network ("student") takes one SGD step on the reweighted images delta (.) x;
4. A descends  s * L_val(student') + e * L_val(W1')  differentiated through levels 1-3.

SANAS' student is a second weight set W2 of the same supernet, which shares A (s = 1,
e = gamma = 2); LeaSE's is an "audience", a fixed human-designed network that does not
depend on A (the ResNet-like tss cell; s = gamma = 1, e = 1). Everything else is shared.

Decisions (METHODS.md 11.7-11.8 leave them open):
- Level 4's gradient is exact for the one-step approximations: the three virtual steps are
  unrolled with autograd (`create_graph`), so A's gradient includes the whole saliency path.
- eps = 0.03 is in pixel units (0..1) and converted to the network's normalised inputs per
  channel; LeaSE, which states no bound, uses the same one.
- delta starts at a tiny random point (1e-3 of the bound): at delta = 0 the objective's gradient
  is exactly zero, the clean prediction being its minimum. The ascent step is scaled so that
  its largest pixel moves the full bound (the step of virtual adversarial training), then
  clamped onto the box. delta is recomputed per batch, not stored per image.
- Reweighting uses delta / eps (in [-1, 1]) rather than delta, so inputs keep their scale;
  the stem's batch-statistics BatchNorm makes the two equivalent up to its epsilon.
- Cadence (SANAS' paper, also used for LeaSE): W1 every batch, delta and the student every
  3 batches, A every 5; the student's SGD follows the weights' recipe and learning rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from autohas.trainables.weight_sharing.methods.base import Batch, Method, MethodContext, Settings, clip_gradients, resnet_cell
from autohas.trainables.weight_sharing.methods.darts import DartsV1
from autohas.trainables.weight_sharing.methods.gdas import Gdas, GdasSettings

SALIENCY_IMAGES = 8  # validation images whose saliency maps each checkpoint keeps, for the report
START_SCALE = 1e-3


def input_bound(eps: float, std: tuple[float, float, float], device: torch.device) -> torch.Tensor:
    """The L_inf bound `eps` (pixel units) in normalised input units, per channel: shape (1, 3, 1, 1)."""
    return (eps / torch.tensor(std, dtype=torch.float32, device=device)).view(1, 3, 1, 1)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy l(a, b) = -sum_k b_k log a_k between softmax(logits) and a probability target."""
    return -(target * F.log_softmax(logits, dim=1)).sum()


def saliency_perturbation(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    bound: torch.Tensor,
    generator: torch.Generator,
    create_graph: bool = False,
) -> torch.Tensor:
    """delta per image: one ascent step of l(f(x + delta), f(x)) from a tiny random start, in the box.

    With `create_graph` the result stays a differentiable function of what `forward` depends on
    (weights, architecture), so a later loss can be differentiated through it.
    """
    start = (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * bound * START_SCALE
    start.requires_grad_()
    with torch.enable_grad():
        clean = F.softmax(forward(x), dim=1)
        if not create_graph:
            clean = clean.detach()
        loss = soft_cross_entropy(forward(x + start), clean)
        grad = torch.autograd.grad(loss, start, create_graph=create_graph)[0]
    scale = grad.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-30)
    stepped = start + bound * grad / scale
    return torch.maximum(torch.minimum(stepped, bound), -bound)


def reweight(delta: torch.Tensor, x: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """The saliency-reweighted images (delta / eps) (.) x."""
    return delta / bound * x


def _virtual_step(params: dict[str, torch.Tensor], loss: torch.Tensor, lr: float, decay: float) -> dict[str, torch.Tensor]:
    """One differentiable SGD step w - lr (dL/dw + decay w); a weight the loss does not use only decays."""
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True, allow_unused=True)
    return {
        name: w - lr * ((0 if g is None else g) + decay * w) for (name, w), g in zip(params.items(), grads)
    }


def _leaves(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().requires_grad_() for name, p in module.named_parameters()}


@dataclass(frozen=True)
class SaliencySettings(Settings):
    """The saliency bound and the cadence (SANAS' paper; LeaSE uses the same)."""

    eps: float = 0.03  # L_inf bound of the saliency perturbation (pixel units)
    every: int = 3  # saliency maps and the student's step every 3 batches
    arch_every: int = 5  # the architecture's step every 5 batches


@dataclass(frozen=True)
class SaliencyGdasSettings(SaliencySettings, GdasSettings):
    """sanas-gdas: the saliency settings and GDAS' temperatures."""


class LearningFromExplanations(Method):
    """The shared machinery; subclasses pick the student, its use of A, and the two loss weights.

    Combined with a base method (DARTS or GDAS) by inheritance: the base says what the
    weights see (`arch_kwargs`) and its schedule (GDAS' tau); this class replaces its
    architecture step. A subclass defines `build_student() -> nn.Module`.
    """

    Settings = SaliencySettings
    student_weight = 1.0
    explainer_weight = 1.0

    def __init__(self, context: MethodContext, settings: SaliencySettings | None = None) -> None:
        super().__init__(context, settings)
        r = context.recipe
        self.student = self.build_student().to(context.device)
        self.s_optimizer = torch.optim.SGD(
            self.student.parameters(), lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay, nesterov=r.nesterov
        )
        self.bound = input_bound(self.settings.eps, context.spec.std, context.device)
        self.count = 0
        self.maps: dict | None = None

    def student_kwargs(self, arch: dict) -> dict:
        """The student's forward arguments given the explainer's architecture arguments."""
        return arch

    def perturbation(self, x: torch.Tensor, arch: dict, create_graph: bool = False, params=None) -> torch.Tensor:
        """Saliency maps of `x` by the explainer (the supernet, with `params` if given)."""
        net = self.context.supernet
        if params is None:
            forward = lambda z: net(z, **arch)  # noqa: E731
        else:
            forward = lambda z: functional_call(net, params, (z,), arch)  # noqa: E731
        return saliency_perturbation(forward, x, self.bound, self.context.generator, create_graph)

    def arch_step(self, train: Batch, valid: Batch) -> None:
        s = self.settings
        step, self.count = self.count, self.count + 1
        if step % s.every == 0:
            self.student_step(train)
        if step % s.arch_every == 0:
            self._alpha_step(self.unrolled_gradient(train, valid))

    def student_step(self, train: Batch) -> float:
        """Levels 2 and 3 for real: saliency maps of the batch by W1, one SGD step of the student on them."""
        x, y = train
        arch = self.arch_kwargs(False)
        delta = self.perturbation(x, arch).detach()
        for group in self.s_optimizer.param_groups:
            group["lr"] = self.context.lr
        self.s_optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.student(reweight(delta, x, self.bound), **self.student_kwargs(arch)), y)
        loss.backward()
        clip_gradients(self.student.parameters(), self.context.recipe.grad_clip)
        self.s_optimizer.step()
        return float(loss.detach())

    def unrolled_gradient(self, train: Batch, valid: Batch) -> torch.Tensor:
        """d/dA of  s L_val(student') + e L_val(W1')  through the virtual steps of levels 1-3."""
        return torch.autograd.grad(self.unrolled_objective(train, valid), self.context.alpha)[0]

    def unrolled_objective(self, train: Batch, valid: Batch) -> torch.Tensor:
        """s L_val(student') + e L_val(W1') as a differentiable function of A (levels 1-3 virtual steps)."""
        context = self.context
        lr, decay = context.lr, context.recipe.weight_decay
        (xt, yt), (xv, yv) = train, valid
        arch = self.arch_kwargs(True)  # one architecture (one sample, for GDAS) for the whole objective
        student_arch = self.student_kwargs(arch)
        net, student = context.supernet, self.student

        w1 = _leaves(net)
        w1_next = _virtual_step(w1, F.cross_entropy(functional_call(net, w1, (xt,), arch), yt), lr, decay)
        delta = self.perturbation(xt, arch, create_graph=True, params=w1_next)
        w2 = _leaves(student)
        taught = functional_call(student, w2, (reweight(delta, xt, self.bound),), student_arch)
        w2_next = _virtual_step(w2, F.cross_entropy(taught, yt), lr, decay)
        objective = self.student_weight * F.cross_entropy(functional_call(student, w2_next, (xv,), student_arch), yv)
        return objective + self.explainer_weight * F.cross_entropy(functional_call(net, w1_next, (xv,), arch), yv)

    def end_epoch(self) -> None:
        """Keep the saliency maps of a fixed set of validation images (shown in the report)."""
        context = self.context
        images = context.fixed_validation_images(SALIENCY_IMAGES)
        x = context.normalise(images)
        delta = self.perturbation(x, self.arch_kwargs(False)).detach()
        strength = (delta.abs() / self.bound).amax(dim=1)
        self.maps = {"epoch": context.epoch, "images": images.cpu(), "saliency": strength.cpu().to(torch.float16)}

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "student": self.student.state_dict(),
            "s_optimizer": self.s_optimizer.state_dict(),
            "count": self.count,
            "maps": self.maps,
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.student.load_state_dict(state["student"])
        self.s_optimizer.load_state_dict(state["s_optimizer"])
        self.count = int(state["count"])
        self.maps = state["maps"]


class Sanas(LearningFromExplanations):
    """SANAS: the student is a second weight set W2 of the same supernet, trained under the same A."""

    student_weight = 1.0
    explainer_weight = 2.0  # gamma (SANAS' Fig. 4)

    def build_student(self) -> nn.Module:
        from autohas.models.supernet import TssSupernet

        r = self.context.recipe
        return TssSupernet(self.context.spec.num_classes, r.channels, r.cells_per_stage)


class SanasDarts(Sanas, DartsV1):
    name = "sanas-darts"


class SanasGdas(Sanas, Gdas):
    name = "sanas-gdas"
    Settings = SaliencyGdasSettings


class Lease(LearningFromExplanations, DartsV1):
    """LeaSE on DARTS: the audience is the ResNet-like tss network (the supernet's width and depth),
    which does not depend on A; A's objective weighs both validation losses by 1 (gamma = 1)."""

    name = "lease"
    student_weight = 1.0  # gamma
    explainer_weight = 1.0

    def build_student(self) -> nn.Module:
        from autohas.models.networks import NatsNetwork, tss_plan
        from autohas.models.supernet import use_batch_statistics

        r = self.context.recipe
        audience = NatsNetwork(tss_plan(resnet_cell(), r.channels, r.cells_per_stage), self.context.spec.num_classes)
        return use_batch_statistics(audience)

    def student_kwargs(self, arch: dict) -> dict:
        return {}
