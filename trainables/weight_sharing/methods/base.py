"""What every weight-sharing method is: a Method subclass with its own Settings, given a narrow context.

A method gets a `MethodContext` (the supernet, alpha, the two optimisers, the search's random
generator, the shared recipe, the data spec, validation batches on demand) and its own frozen
`Settings` dataclass (what only it reads: GDAS' temperatures, ENAS' controller, ...). A new
method is one module in this package plus one line in `registry.py`.

The alternation every method refines, per step: one SGD step of the supernet weights on a
training batch (under the architecture the method trains the weights with), then one update
of its architecture parameters on a validation batch, as the NATS-Bench search script
(AutoDL-Projects `exps/NATS-algos/search-cell.py`, `search_func`) does.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from autohas.data import DataSpec
    from autohas.trainables.weight_sharing.recipe import SearchRecipe

Batch = tuple[torch.Tensor, torch.Tensor]


def clip_gradients(parameters, max_norm: float | None) -> None:
    """Clip the gradient norm when `max_norm` is set (NATS-Bench's search clips none: None)."""
    if max_norm is not None:
        nn.utils.clip_grad_norm_(parameters, max_norm)


@dataclass(frozen=True)
class Settings:
    """A method's own settings (none here); subclasses add fields, every one with a default."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass
class MethodContext:
    """The part of a search a method may use. The search owns these objects and restores them in
    place on resume; it advances `epoch` and `lr`; the method reads them."""

    supernet: nn.Module
    alpha: nn.Parameter
    w_optimizer: torch.optim.Optimizer  # the supernet weights' SGD
    a_optimizer: torch.optim.Optimizer  # alpha's Adam
    generator: torch.Generator  # every random draw of a method (see Method)
    recipe: "SearchRecipe"  # the settings every method shares (epochs, batches, the weights' SGD)
    spec: "DataSpec"  # classes, image size, normalisation
    seed: int
    validation_batches: Callable[[], Iterator[Batch]]  # shuffled validation batches without end, from a fresh pass
    fixed_validation_images: Callable[[int], torch.Tensor]  # the same `count` uint8 validation images every call
    normalise: Callable[[torch.Tensor], torch.Tensor]  # uint8 images -> the network's inputs
    epoch: int = 0  # search epochs done
    lr: float = 0.0  # this epoch's weight learning rate (the cosine per epoch)
    arch_cost: Callable[[torch.Tensor], torch.Tensor] | None = None  # a term of alpha alone that every
    # architecture update adds to its loss (a latency target's lambda * L_cost, `cost.py`); None: none

    @property
    def device(self) -> torch.device:
        return self.alpha.device

    def beta(self) -> torch.Tensor:
        """The mixing weights softmax(alpha) per edge (or layer)."""
        return F.softmax(self.alpha, dim=-1)


class Method:
    """Base: a DARTS-style alternation. Subclasses say what the weights see and how alpha moves.

    The rule every method keeps: every random draw goes through `self.context.generator`
    (never Python's `random`, numpy's or torch's global generator), and every state it
    changes is in `state_dict`: then a resumed search equals an uninterrupted one. Tests
    inject the same draws into the reference implementation.
    """

    name = ""
    Settings: type[Settings] = Settings  # the method's own settings
    default_selection = "alpha"
    uses_alpha = True  # whether alpha is the method's architecture (rsps and enas have none)
    space = "nats-tss"  # the architecture space its supernet searches (size.py: nats-sss)

    def __init__(self, context: MethodContext, settings: Any = None) -> None:
        settings = self.Settings() if settings is None else settings
        if type(settings) is not self.Settings:  # exactly: TasSettings extends GdasSettings, yet is not gdas' settings
            raise TypeError(f"{self.name} takes {self.Settings.__name__}, not {type(settings).__name__}")
        self.context, self.settings = context, settings

    def start_epoch(self, epoch: int) -> None:
        """Called before each search epoch (0-based)."""

    def arch_kwargs(self, differentiable: bool) -> dict:
        """The supernet's architecture arguments for one forward pass (`weights` and/or `indices`);
        `differentiable`: alpha's gradient flows through them (else they are constants)."""
        beta = self.context.beta()
        return {"weights": beta if differentiable else beta.detach()}

    def weights_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits under the architecture this step trains the weights with."""
        return self.context.supernet(x, **self.arch_kwargs(False))

    def arch_loss(self, valid: Batch) -> torch.Tensor:
        """The architecture's loss on a validation batch, differentiable in alpha."""
        x, y = valid
        return F.cross_entropy(self.context.supernet(x, **self.arch_kwargs(True)), y)

    def arch_step(self, train: Batch, valid: Batch) -> None:
        """Update the architecture parameters on a validation batch (DARTS first order)."""
        self._alpha_step(torch.autograd.grad(self.arch_loss(valid), self.context.alpha)[0])

    def _alpha_step(self, gradient: torch.Tensor) -> None:
        """One step of alpha's optimiser with the gradient of the method's architecture loss. A context's
        `arch_cost` depends on alpha alone, so the gradient of loss + cost is this one plus the cost's:
        it is added here, once for every method (whatever way it computed its own, e.g. darts-v2's
        unrolled one), and only to the architecture update (as TAS' cost loss)."""
        context = self.context
        if context.arch_cost is not None:
            gradient = gradient + torch.autograd.grad(context.arch_cost(context.alpha), context.alpha)[0]
        optimizer = context.a_optimizer
        optimizer.zero_grad(set_to_none=True)
        context.alpha.grad = gradient
        optimizer.step()

    def weight_step(self, train: Batch) -> float:
        """One SGD step of the supernet weights on a training batch; its loss."""
        context = self.context
        x, y = train
        context.w_optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.weights_forward(x), y)
        loss.backward()
        clip_gradients(context.supernet.parameters(), context.recipe.grad_clip)
        context.w_optimizer.step()
        return float(loss.detach())

    def step(self, train: Batch, valid: Batch) -> float:
        """One search step: a weight step on `train`, then an architecture step on `valid`."""
        loss = self.weight_step(train)
        self.arch_step(train, valid)
        return loss

    def end_epoch(self) -> None:
        """Called after each search epoch (the epoch counter already advanced)."""

    def fixed_indices(self) -> list[int] | None:
        """The architecture, when the method does not search it (None: derived by the selection)."""
        return None

    def hparams(self) -> dict:
        """Hyperparameters the method derived, for the schema's `hparams` (none by default)."""
        return {}

    def training_hparams(self) -> dict:
        """What re-training the derived architecture changes in the H0 recipe (nothing by default)."""
        return {}

    def sample_candidate(self) -> list[int]:
        """One architecture drawn from the method's distribution (softmax(alpha) by default)."""
        probs = self.context.beta().detach()
        return torch.multinomial(probs, 1, generator=self.context.generator).flatten().tolist()

    def candidates(self, count: int) -> list[list[int]]:
        """The architectures the `sampled` selection compares (default: `count` draws)."""
        return [self.sample_candidate() for _ in range(count)]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""


RESNET_CELL_INDEX = 11472  # the tss cell NATS-Bench calls ResNet-like


def resnet_cell() -> tuple[str, ...]:
    """The ResNet-like cell's operation per edge (nats_tss.EDGES order)."""
    from autohas.spaces import get_space

    space = get_space("nats-tss")
    return tuple(space.decode(space.index_to_arch(RESNET_CELL_INDEX)))
