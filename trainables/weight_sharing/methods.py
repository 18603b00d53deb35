"""Weight-sharing methods: how one search step updates the shared weights and the architecture.

Every method alternates, per step, one SGD step of the supernet weights on a training
batch (under the architecture the method trains the weights with) and one update of
its architecture parameters on a validation batch. What differs is small:

| method   | weights see                         | architecture update (validation batch)          |
|----------|-------------------------------------|--------------------------------------------------|
| darts-v1 | the softmax(alpha) mixture          | Adam on dL_val/d alpha of the mixture            |
| darts-v2 | the mixture                         | the unrolled (second-order) gradient             |
| gdas     | one Gumbel-max sampled op per edge  | Adam on the straight-through gradient, tau 10->0.1|
| rsps     | one uniformly random op per edge    | none (candidates are sampled uniformly)          |
| setn     | one op per edge sampled from alpha  | Adam on the mixture gradient, as darts-v1        |
| enas     | one op per edge from the controller | REINFORCE on the controller (reward: accuracy)   |

SANAS and LeaSE (`explained.py`) and AutoHAS (`autohas.py`) build on these classes;
`registry.py` names them all.

`sample_candidate` is how the method proposes architectures for the `sampled`
selection (best of 100 on a validation batch), the default of rsps, setn and enas.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

if TYPE_CHECKING:
    from trainables.weight_sharing.search import SupernetSearch

Batch = tuple[torch.Tensor, torch.Tensor]


class Method:
    """Base: a DARTS-style alternation. Subclasses say what the weights see and how alpha moves."""

    name = ""
    default_selection = "alpha"
    uses_alpha = True  # whether alpha is the method's architecture (rsps and enas have none)
    space = "nats-tss"  # the architecture space its supernet searches (size_methods.py: nats-sss)

    def __init__(self, search: "SupernetSearch") -> None:
        self.search = search

    def start_epoch(self, epoch: int) -> None:
        """Called before each search epoch (0-based)."""

    def arch_kwargs(self, differentiable: bool) -> dict:
        """The supernet's architecture arguments for one forward pass (`weights` and/or `indices`);
        `differentiable`: alpha's gradient flows through them (else they are constants)."""
        beta = self.search.beta()
        return {"weights": beta if differentiable else beta.detach()}

    def weights_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits under the architecture this step trains the weights with."""
        return self.search.supernet(x, **self.arch_kwargs(False))

    def arch_loss(self, valid: Batch) -> torch.Tensor:
        """The architecture's loss on a validation batch, differentiable in alpha."""
        x, y = valid
        return F.cross_entropy(self.search.supernet(x, **self.arch_kwargs(True)), y)

    def arch_step(self, train: Batch, valid: Batch) -> None:
        """Update the architecture parameters on a validation batch (DARTS first order)."""
        self._alpha_step(torch.autograd.grad(self.arch_loss(valid), self.search.alpha)[0])

    def _alpha_step(self, gradient: torch.Tensor) -> None:
        optimizer = self.search.a_optimizer
        optimizer.zero_grad(set_to_none=True)
        self.search.alpha.grad = gradient
        optimizer.step()

    def step(self, train: Batch, valid: Batch) -> float:
        """One search step: a weight step on `train`, then an architecture step on `valid`."""
        search = self.search
        x, y = train
        search.w_optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.weights_forward(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(search.supernet.parameters(), search.recipe.grad_clip)
        search.w_optimizer.step()
        self.arch_step(train, valid)
        return float(loss.detach())

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
        probs = self.search.beta().detach()
        return torch.multinomial(probs, 1, generator=self.search.generator).flatten().tolist()

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


class DartsV1(Method):
    name = "darts-v1"


class DartsV2(Method):
    """Second order: alpha's gradient through one virtual SGD step w' = w - xi * dL_train/dw.

    xi is the current weight learning rate; the virtual step includes weight decay but not
    momentum (DARTS' own code adds the momentum buffer; a documented simplification). The
    Hessian-vector product uses central finite differences with eps = 0.01 / ||dL_val/dw'||.
    """

    name = "darts-v2"

    def arch_step(self, train: Batch, valid: Batch) -> None:
        search = self.search
        net, alpha, xi, decay = search.supernet, search.alpha, search.lr, search.recipe.weight_decay
        names = [n for n, _ in net.named_parameters()]
        weights = [p.detach() for _, p in net.named_parameters()]

        def loss_at(params: list[torch.Tensor], batch: Batch, beta: torch.Tensor) -> torch.Tensor:
            x, y = batch
            return F.cross_entropy(functional_call(net, dict(zip(names, params)), (x,), {"weights": beta}), y)

        train_grads = torch.autograd.grad(loss_at(list(net.parameters()), train, search.beta().detach()), list(net.parameters()))
        unrolled = [(w - xi * (g + decay * w)).requires_grad_() for w, g in zip(weights, train_grads)]
        grads = torch.autograd.grad(loss_at(unrolled, valid, search.beta()), [alpha, *unrolled])
        direct, dw = grads[0], grads[1:]
        eps = 0.01 / torch.sqrt(sum((g * g).sum() for g in dw)).clamp_min(1e-12)
        shifted = []
        for sign in (1.0, -1.0):
            params = [w + sign * eps * g for w, g in zip(weights, dw)]
            shifted.append(torch.autograd.grad(loss_at(params, train, search.beta()), alpha)[0])
        self._alpha_step(direct - xi * (shifted[0] - shifted[1]) / (2 * eps))


def gumbel_noise(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard Gumbel noise shaped like `like` (an exponential draw of 0 is clamped: finite)."""
    exponential = torch.empty_like(like).exponential_(generator=generator)
    return -exponential.clamp_min(torch.finfo(like.dtype).tiny).log()


def gumbel_softmax(alpha: torch.Tensor, tau: float, generator: torch.Generator) -> torch.Tensor:
    """softmax((log_softmax(alpha) + Gumbel) / tau) per row (TAS Eq. 3.11)."""
    return F.softmax((F.log_softmax(alpha, dim=-1) + gumbel_noise(alpha, generator)) / tau, dim=-1)


def gumbel_straight_through(alpha: torch.Tensor, tau: float, generator: torch.Generator) -> tuple[torch.Tensor, list[int]]:
    """GDAS' hard sample per row of `alpha`: the one-hot of argmax(log_softmax(alpha) + Gumbel)
    in the forward pass, the gradient of softmax((log_softmax(alpha) + Gumbel) / tau) backward."""
    soft = gumbel_softmax(alpha, tau, generator)
    index = soft.argmax(dim=-1)
    hard = F.one_hot(index, alpha.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft, index.tolist()


def gdas_tau(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """Linear annealing from tau_max (first epoch) to tau_min (last epoch)."""
    if epochs <= 1:
        return tau_max
    return tau_max - (tau_max - tau_min) * epoch / (epochs - 1)


class Gdas(Method):
    """Gumbel-max sampling of one op per edge (one sample per forward pass, shared by all cells)."""

    name = "gdas"

    def __init__(self, search: "SupernetSearch") -> None:
        super().__init__(search)
        self.tau = search.recipe.tau_max

    def start_epoch(self, epoch: int) -> None:
        recipe = self.search.recipe
        self.tau = gdas_tau(epoch, recipe.epochs, recipe.tau_max, recipe.tau_min)

    def arch_kwargs(self, differentiable: bool) -> dict:
        """A fresh hard sample: its straight-through one-hot as weights when differentiable."""
        alpha = self.search.alpha if differentiable else self.search.alpha.detach()
        hard, indices = gumbel_straight_through(alpha, self.tau, self.search.generator)
        return {"weights": hard, "indices": indices} if differentiable else {"indices": indices}


class RandomSampling(Method):
    """RSPS: random sampling with parameter sharing; no architecture parameters to learn."""

    name = "rsps"
    default_selection = "sampled"
    uses_alpha = False

    def sample_candidate(self) -> list[int]:
        edges, ops = self.search.supernet.shape
        return torch.randint(ops, (edges,), generator=self.search.generator, device=self.search.device).tolist()

    def arch_kwargs(self, differentiable: bool) -> dict:
        return {"indices": self.sample_candidate()}

    def arch_step(self, train: Batch, valid: Batch) -> None:
        return None


class Setn(Method):
    """SETN: weights trained on architectures sampled from softmax(alpha); alpha by the mixture gradient;
    the final pick is the best of sampled candidates ("templates") on a validation batch."""

    name = "setn"
    default_selection = "sampled"

    def weights_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.search.supernet(x, indices=self.sample_candidate())


class EnasController(nn.Module):
    """ENAS' controller: an LSTM cell choosing one op per edge, each choice fed back as an embedding.

    Logits are `tanh_constant * tanh(h / temperature)` (ENAS' settings 2.5 and 5).
    """

    def __init__(self, edges: int, ops: int, hidden: int = 32, temperature: float = 5.0, tanh_constant: float = 2.5):
        super().__init__()
        self.edges, self.temperature, self.tanh_constant = edges, temperature, tanh_constant
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.cell = nn.LSTMCell(hidden, hidden)
        self.embedding = nn.Embedding(ops, hidden)
        self.head = nn.Linear(hidden, ops)

    def forward(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Sample an architecture: (sum of log-probabilities, sum of entropies, op indices)."""
        state = None
        inputs = self.start
        log_prob = entropy = torch.zeros((), device=self.start.device)
        choices = []
        for _ in range(self.edges):
            state = self.cell(inputs, state)
            logits = self.tanh_constant * torch.tanh(self.head(state[0]) / self.temperature)
            log_probs = F.log_softmax(logits, dim=-1)
            choice = torch.multinomial(log_probs.exp(), 1, generator=generator).view(1)
            log_prob = log_prob + log_probs[0, choice[0]]
            entropy = entropy - (log_probs.exp() * log_probs).sum()
            choices.append(int(choice))
            inputs = self.embedding(choice)
        return log_prob, entropy, choices


class Enas(Method):
    """ENAS: weights trained on the controller's samples; the controller by REINFORCE.

    Decision (documented): one controller update per search step, on that step's validation
    batch (reward = the sampled architecture's accuracy on it, baseline an exponential moving
    average with decay 0.99, entropy bonus 1e-4), instead of ENAS' separate controller phase
    of 50 x 20 samples per epoch. Controller optimiser: Adam lr 1e-3, eps 1e-3 (NATS-Bench).
    """

    name = "enas"
    default_selection = "sampled"
    uses_alpha = False

    def __init__(self, search: "SupernetSearch") -> None:
        super().__init__(search)
        edges, ops = search.supernet.shape
        recipe = search.recipe
        self.controller = EnasController(edges, ops).to(search.device)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=recipe.enas_lr, eps=recipe.enas_eps)
        self.baseline: float | None = None

    def sample_candidate(self) -> list[int]:
        with torch.no_grad():
            return self.controller(self.search.generator)[2]

    def arch_kwargs(self, differentiable: bool) -> dict:
        return {"indices": self.sample_candidate()}

    def arch_step(self, train: Batch, valid: Batch) -> None:
        recipe = self.search.recipe
        x, y = valid
        log_prob, entropy, choices = self.controller(self.search.generator)
        with torch.no_grad():
            reward = float((self.search.supernet(x, indices=choices).argmax(dim=1) == y).float().mean())
        decay = recipe.enas_baseline_decay
        self.baseline = reward if self.baseline is None else decay * self.baseline + (1 - decay) * reward
        loss = -log_prob * (reward - self.baseline) - recipe.enas_entropy_weight * entropy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def state_dict(self) -> dict:
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state: dict) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]


BASE_METHODS: dict[str, type[Method]] = {m.name: m for m in (DartsV1, DartsV2, Gdas, RandomSampling, Setn, Enas)}
