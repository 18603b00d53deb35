"""ENAS: a 2-layer LSTM controller samples the architecture and learns by REINFORCE in its own phase."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from autohas.trainables.weight_sharing.methods.base import Batch, Method, MethodContext, Settings

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


@dataclass(frozen=True)
class EnasSettings(Settings):
    """The controller's phase and optimiser, as the reference's (search-cell.py's enas options)."""

    lr: float = 1e-3  # Adam, no weight decay
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-3
    baseline_decay: float = 0.99
    entropy_weight: float = 1e-4
    controller_steps: int = 50  # controller updates per epoch
    aggregate: int = 20  # samples (validation batches) per controller update
    grad_clip: float = 5.0


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
    Settings = EnasSettings

    def __init__(self, context: MethodContext, settings: EnasSettings | None = None) -> None:
        super().__init__(context, settings)
        edges, ops = context.supernet.shape
        s = self.settings
        self.controller = EnasController(edges, ops).to(context.device)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=s.lr, betas=s.betas, eps=s.eps, weight_decay=0.0)
        self.baseline: float | None = None

    def sample_candidate(self) -> list[int]:
        with torch.no_grad():
            return self.controller(self.context.generator)[2]

    def weights_forward(self, x: torch.Tensor) -> torch.Tensor:
        self.controller.eval()
        self.sampled = self.sample_candidate()
        return self.context.supernet(x, indices=self.sampled)

    def arch_step(self, train: Batch, valid: Batch) -> None:
        """Nothing learnt in the step; the reference runs the step's sample on the validation batch,
        which moves the BN running estimates of the stem and residual blocks: so does this."""
        with torch.no_grad():
            self.context.supernet(valid[0], indices=self.sampled)

    def end_epoch(self) -> None:
        self.train_controller(self.context.validation_batches())

    def train_controller(self, batches) -> None:
        """One controller phase over `batches` (an endless iterator of validation batches)."""
        s, context = self.settings, self.context
        aggregate = s.aggregate
        context.supernet.eval()
        self.controller.train()
        self.optimizer.zero_grad(set_to_none=True)
        baselines = []
        for step in range(s.controller_steps * aggregate):
            x, y = next(batches)
            log_prob, entropy, choices = self.controller(context.generator)
            with torch.no_grad():
                accuracy = (context.supernet(x, indices=choices).argmax(dim=1) == y).float().mean()
            reward = accuracy + s.entropy_weight * entropy
            prev = self.baseline
            baseline = accuracy if prev is None else prev - (1 - s.baseline_decay) * (prev - reward)
            baselines.append(float(baseline.detach()))
            (-log_prob * (reward - baseline) / aggregate).backward()
            if (step + 1) % aggregate == 0:
                nn.utils.clip_grad_norm_(self.controller.parameters(), s.grad_clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        if baselines:
            self.baseline = float(np.mean(baselines))
        context.supernet.train()

    def candidates(self, count: int) -> list[list[int]]:
        return [self.sample_candidate() for _ in range(count)]

    def state_dict(self) -> dict:
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state: dict) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
