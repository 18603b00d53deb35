"""Weight-sharing methods: how one search step updates the shared weights and the architecture.

Every method alternates, per step, one SGD step of the supernet weights on a training
batch (under the architecture the method trains the weights with) and one update of
its architecture parameters on a validation batch, as the NATS-Bench search script
(AutoDL-Projects `exps/NATS-algos/search-cell.py`, `search_func`) does:

| method   | weights see                                   | architecture update (validation batch)          |
|----------|-----------------------------------------------|--------------------------------------------------|
| darts-v1 | the softmax(alpha) mixture                    | Adam on dL_val/d alpha of the mixture            |
| darts-v2 | the mixture                                   | the unrolled (second-order) gradient             |
| gdas     | one Gumbel-max sampled op per edge            | Adam on the straight-through gradient, tau 10->0.1|
| rsps     | per cell and node, uniformly random ops       | none                                             |
| setn     | one uniformly random op per edge              | Adam on the mixture gradient, as darts-v1        |
| enas     | one op per edge from the controller           | none in the step: after each epoch the controller|
|          |                                               | trains by REINFORCE on validation batches        |

SANAS and LeaSE (`explained.py`) and AutoHAS (`autohas.py`) build on these classes;
`registry.py` names them all.

`candidates(count)` is the architecture list a method proposes to the `sampled` selection
(each evaluated on its own validation batch, the best kept): 100 uniformly random ones
(rsps), the 100 most probable under softmax(alpha) (setn), 100 controller samples (enas).

Rule for every method: every random draw goes through `self.search.generator` (never
Python's `random` or torch's global generator), so that a resumed search equals an
uninterrupted one. Tests inject the same draws into the reference implementation.
"""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical
from torch.func import functional_call

if TYPE_CHECKING:
    from trainables.weight_sharing.search import SupernetSearch

Batch = tuple[torch.Tensor, torch.Tensor]


def clip_gradients(parameters, max_norm: float | None) -> None:
    """Clip the gradient norm when `max_norm` is set (NATS-Bench's search clips none: None)."""
    if max_norm is not None:
        nn.utils.clip_grad_norm_(parameters, max_norm)


class Method:
    """Base: a DARTS-style alternation. Subclasses say what the weights see and how alpha moves.

    Every random draw must use `self.search.generator` (resume is exact only then).
    """

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

    def weight_step(self, train: Batch) -> float:
        """One SGD step of the supernet weights on a training batch; its loss."""
        search = self.search
        x, y = train
        search.w_optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.weights_forward(x), y)
        loss.backward()
        clip_gradients(search.supernet.parameters(), search.recipe.grad_clip)
        search.w_optimizer.step()
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
        probs = self.search.beta().detach()
        return torch.multinomial(probs, 1, generator=self.search.generator).flatten().tolist()

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


class DartsV1(Method):
    name = "darts-v1"


class DartsV2(Method):
    """Second order: alpha's gradient through one virtual SGD step w' = w - xi * (m + dL_train/dw + wd w).

    As the reference's `backward_step_unrolled`: xi is the current weight learning rate, m
    the weight optimiser's momentum buffer times its momentum (zero before the first step);
    the Hessian-vector product uses central finite differences at w +- r v on the training
    batch, r = 0.01 / ||v||, v = dL_val/dw'. The forwards at w (the gradient of the virtual
    step and the two shifted ones) update the BN running estimates as the reference's do;
    the forward at w' does not (the reference runs it on a copy of the network).
    """

    name = "darts-v2"
    finite_difference = 0.01

    def arch_step(self, train: Batch, valid: Batch) -> None:
        search = self.search
        net, alpha, optimizer = search.supernet, search.alpha, search.w_optimizer
        group = optimizer.param_groups[0]
        xi, decay, momentum = group["lr"], group["weight_decay"], group["momentum"]
        names = [n for n, _ in net.named_parameters()]
        params = list(net.parameters())
        weights = [p.detach() for p in params]

        def loss_at(values: Sequence[torch.Tensor], batch: Batch, buffers: dict | None = None) -> torch.Tensor:
            x, y = batch
            state = dict(zip(names, values), **(buffers or {}))
            return F.cross_entropy(functional_call(net, state, (x,), {"weights": search.beta()}), y)

        train_grads = torch.autograd.grad(F.cross_entropy(net(train[0], weights=search.beta().detach()), train[1]), params)
        buffers = [optimizer.state.get(p, {}).get("momentum_buffer") for p in params]
        if any(b is None for b in buffers):
            moments = [torch.zeros_like(w) for w in weights]
        else:
            moments = [b * momentum for b in buffers]
        unrolled = [(w - xi * (m + g + decay * w)).requires_grad_() for w, m, g in zip(weights, moments, train_grads)]
        copies = {n: b.clone() for n, b in net.named_buffers()}  # the virtual network's BN estimates are thrown away
        grads = torch.autograd.grad(loss_at(unrolled, valid, copies), [alpha, *unrolled])
        direct, dw = grads[0], grads[1:]
        r = self.finite_difference / torch.sqrt(sum((g * g).sum() for g in dw))
        shifted = [
            torch.autograd.grad(loss_at([w + sign * r * g for w, g in zip(weights, dw)], train), alpha)[0]
            for sign in (1.0, -1.0)
        ]
        self._alpha_step(direct - xi * (shifted[0] - shifted[1]) / (2 * r))


def gumbel_noise(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard Gumbel noise shaped like `like`, -log(Exp(1)); redrawn whole while any is infinite
    (an exponential draw of exactly 0), as the reference's GDAS does."""
    while True:
        noise = -torch.empty_like(like).exponential_(generator=generator).log()
        if not torch.isinf(noise).any():
            return noise


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
    """Gumbel-max sampling of one op per edge (one sample per forward pass, shared by all cells).

    Both steps draw a fresh sample and pass its straight-through weights with it, as the
    reference's `forward_gdas`: the sampled op scaled by its weight plus the bare weight of
    every other op (0 forward; backward, a gradient to every alpha of the edge).
    """

    name = "gdas"

    def __init__(self, search: "SupernetSearch") -> None:
        super().__init__(search)
        self.tau = search.recipe.tau_max

    def start_epoch(self, epoch: int) -> None:
        recipe = self.search.recipe
        self.tau = gdas_tau(epoch, recipe.epochs, recipe.tau_max, recipe.tau_min)

    def arch_kwargs(self, differentiable: bool) -> dict:
        alpha = self.search.alpha if differentiable else self.search.alpha.detach()
        hard, indices = gumbel_straight_through(alpha, self.tau, self.search.generator)
        return {"weights": hard, "indices": indices}


def all_architectures(edges: int, ops: int) -> np.ndarray:
    """Every op-index assignment to `edges` edges, the first edge varying slowest: (ops**edges, edges)."""
    return np.array(list(itertools.product(range(ops), repeat=edges)), dtype=np.int64)


def uniform_ops(count: int, ops: int, generator: torch.Generator) -> list[int]:
    """`count` op indices, each uniform over `ops`, drawn one at a time (the reference draws
    them one `random.choice` at a time; tests replay that order)."""
    return [int(torch.randint(ops, (1,), generator=generator, device=generator.device)) for _ in range(count)]


def uniform_architecture(edges: int, ops: int, generator: torch.Generator) -> list[int]:
    """One op per edge, uniformly at random."""
    return uniform_ops(edges, ops, generator)


def distinct_random_architectures(count: int, edges: int, ops: int, generator: torch.Generator) -> list[list[int]]:
    """`count` distinct architectures drawn uniformly without replacement (the reference's
    `return_topK(count, use_random=True)`)."""
    total = ops**edges
    picks = torch.randperm(total, generator=generator, device=generator.device)[: min(count, total)].tolist()
    return [list(np.unravel_index(pick, (ops,) * edges)) for pick in picks]


def node_edges() -> list[list[int]]:
    """Per computed node of the cell (1, 2, 3), the indices of its incoming edges."""
    from autohas.spaces.nats_tss import EDGES

    nodes = sorted({dst for dst, _ in EDGES})
    return [[e for e, (dst, _) in enumerate(EDGES) if dst == node] for node in nodes]


class RandomSampling(Method):
    """RSPS: random sampling with parameter sharing; no architecture parameters to learn.

    As the reference's `forward_urs`: each search cell draws its own architecture, node by
    node, one uniformly random op per incoming edge, drawn again while all of a node's
    ops are `none`. Candidates: distinct uniformly random architectures.
    """

    name = "rsps"
    default_selection = "sampled"
    uses_alpha = False

    def cell_architecture(self) -> list[int]:
        from autohas.spaces.nats_tss import OPERATIONS

        none = OPERATIONS.index("none")
        generator = self.search.generator
        indices = [0] * self.search.supernet.shape[0]
        for edges in node_edges():
            while True:
                ops = uniform_ops(len(edges), len(OPERATIONS), generator)
                if any(op != none for op in ops):
                    break
            for e, op in zip(edges, ops):
                indices[e] = op
        return indices

    def arch_kwargs(self, differentiable: bool) -> dict:
        return {"indices": [self.cell_architecture() for _ in range(self.search.supernet.search_cells)]}

    def arch_step(self, train: Batch, valid: Batch) -> None:
        """Nothing to learn; the reference still runs a fresh sample on the validation batch, which
        moves the BN running estimates of the stem and residual blocks: so does this."""
        with torch.no_grad():
            self.search.supernet(valid[0], **self.arch_kwargs(False))

    def sample_candidate(self) -> list[int]:
        edges, ops = self.search.supernet.shape
        return uniform_architecture(edges, ops, self.search.generator)

    def candidates(self, count: int) -> list[list[int]]:
        edges, ops = self.search.supernet.shape
        return distinct_random_architectures(count, edges, ops, self.search.generator)



def most_probable_architectures(alpha: torch.Tensor, count: int) -> list[list[int]]:
    """The `count` architectures of highest log-probability under softmax(alpha) per edge,
    best first (ties in enumeration order), as the reference's `return_topK(count, False)`."""
    log_probs = F.log_softmax(alpha.detach().double().cpu(), dim=-1).numpy()
    archs = all_architectures(*log_probs.shape)
    scores = log_probs[np.arange(log_probs.shape[0])[None, :], archs].sum(axis=1)
    order = np.argsort(-scores, kind="stable")[:count]
    return archs[order].tolist()


class Setn(Method):
    """SETN: weights trained on uniformly random architectures (one per step, shared by all cells);
    alpha by the mixture gradient on the validation batch; the final pick is the best, each
    on its own validation batch, of the 100 most probable architectures under softmax(alpha)."""

    name = "setn"
    default_selection = "sampled"

    def weights_forward(self, x: torch.Tensor) -> torch.Tensor:
        edges, ops = self.search.supernet.shape
        return self.search.supernet(x, indices=uniform_architecture(edges, ops, self.search.generator))

    def candidates(self, count: int) -> list[list[int]]:
        return most_probable_architectures(self.search.alpha, count)


class EnasController(nn.Module):
    """ENAS' controller as NATS-Bench runs it: a 2-layer LSTM choosing one op per edge, each
    choice fed back as an embedding; logits `tanh_constant * tanh(w_pred(h) / temperature)`
    (2.5 and 5). Initialisation: uniform(-0.1, 0.1) for the input, the first LSTM layer's
    weights, the embedding and the prediction weights; PyTorch's defaults elsewhere.
    """

    def __init__(self, edges: int, ops: int, hidden: int = 32, layers: int = 2, temperature: float = 5.0,
                 tanh_constant: float = 2.5) -> None:
        super().__init__()
        self.edges, self.temperature, self.tanh_constant = edges, temperature, tanh_constant
        self.input_vars = nn.Parameter(torch.empty(1, 1, hidden))
        self.w_lstm = nn.LSTM(input_size=hidden, hidden_size=hidden, num_layers=layers)
        self.w_embd = nn.Embedding(ops, hidden)
        self.w_pred = nn.Linear(hidden, ops)
        for weight in (self.input_vars, self.w_lstm.weight_hh_l0, self.w_lstm.weight_ih_l0, self.w_embd.weight, self.w_pred.weight):
            nn.init.uniform_(weight, -0.1, 0.1)

    def forward(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Sample an architecture: (sum of log-probabilities, sum of entropies, op indices)."""
        inputs, state = self.input_vars, None
        log_probs, entropies, choices = [], [], []
        for _ in range(self.edges):
            outputs, state = self.w_lstm(inputs, state)
            logits = self.tanh_constant * torch.tanh(self.w_pred(outputs) / self.temperature)
            distribution = Categorical(logits=logits)
            flat = distribution.probs.reshape(-1, distribution.probs.shape[-1])
            choice = torch.multinomial(flat, 1, True, generator=generator).view(distribution.batch_shape)
            choices.append(int(choice.item()))
            log_probs.append(distribution.log_prob(choice).view(-1))
            entropies.append(distribution.entropy().view(-1))
            inputs = self.w_embd(choice)
        return torch.cat(log_probs).sum(), torch.cat(entropies).sum(), choices


class Enas(Method):
    """ENAS as the reference runs it: the weights train on the controller's samples; after
    each search epoch the controller trains in a phase of its own (`train_controller`):
    `controller_steps` x `aggregate` samples, each scored on the next validation batch
    (evaluation batch size, no augmentation), reward = accuracy + 1e-4 x entropy, loss
    -log p x (reward - baseline) / aggregate, gradients clipped at 5 and applied every
    `aggregate` samples by Adam (lr 1e-3, betas (0.5, 0.999), eps 1e-3, no decay).
    The baseline is `prev - 0.01 (prev - reward)` with `prev` fixed for the epoch: the previous
    epoch's mean baseline (in the first epoch, each sample's own accuracy).
    """

    name = "enas"
    default_selection = "sampled"
    uses_alpha = False

    def __init__(self, search: "SupernetSearch") -> None:
        super().__init__(search)
        edges, ops = search.supernet.shape
        recipe = search.recipe
        self.controller = EnasController(edges, ops).to(search.device)
        self.optimizer = torch.optim.Adam(
            self.controller.parameters(), lr=recipe.enas_lr, betas=recipe.arch_betas, eps=recipe.enas_eps, weight_decay=0.0
        )
        self.baseline: float | None = None

    def sample_candidate(self) -> list[int]:
        with torch.no_grad():
            return self.controller(self.search.generator)[2]

    def weights_forward(self, x: torch.Tensor) -> torch.Tensor:
        self.controller.eval()
        self.sampled = self.sample_candidate()
        return self.search.supernet(x, indices=self.sampled)

    def arch_step(self, train: Batch, valid: Batch) -> None:
        """Nothing learnt in the step; the reference runs the step's sample on the validation batch,
        which moves the BN running estimates of the stem and residual blocks: so does this."""
        with torch.no_grad():
            self.search.supernet(valid[0], indices=self.sampled)

    def end_epoch(self) -> None:
        self.train_controller(self.search.controller_batches())

    def train_controller(self, batches) -> None:
        """One controller phase over `batches` (an endless iterator of validation batches)."""
        recipe, search = self.search.recipe, self.search
        aggregate = recipe.enas_aggregate
        search.supernet.eval()
        self.controller.train()
        self.optimizer.zero_grad(set_to_none=True)
        baselines = []
        for step in range(recipe.enas_controller_steps * aggregate):
            x, y = next(batches)
            log_prob, entropy, choices = self.controller(search.generator)
            with torch.no_grad():
                accuracy = (search.supernet(x, indices=choices).argmax(dim=1) == y).float().mean()
            reward = accuracy + recipe.enas_entropy_weight * entropy
            prev = self.baseline
            baseline = accuracy if prev is None else prev - (1 - recipe.enas_baseline_decay) * (prev - reward)
            baselines.append(float(baseline.detach()))
            (-log_prob * (reward - baseline) / aggregate).backward()
            if (step + 1) % aggregate == 0:
                nn.utils.clip_grad_norm_(self.controller.parameters(), recipe.enas_grad_clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        if baselines:
            self.baseline = float(np.mean(baselines))
        search.supernet.train()

    def candidates(self, count: int) -> list[list[int]]:
        return [self.sample_candidate() for _ in range(count)]

    def state_dict(self) -> dict:
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state: dict) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]


BASE_METHODS: dict[str, type[Method]] = {m.name: m for m in (DartsV1, DartsV2, Gdas, RandomSampling, Setn, Enas)}
