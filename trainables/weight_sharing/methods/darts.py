"""DARTS, first order (darts-v1) and second order (darts-v2), as NATS-Bench's search-cell.py runs them."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call

from autohas.trainables.weight_sharing.methods.base import Batch, Method

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
        context = self.context
        net, alpha, optimizer = context.supernet, context.alpha, context.w_optimizer
        group = optimizer.param_groups[0]
        xi, decay, momentum = group["lr"], group["weight_decay"], group["momentum"]
        names = [n for n, _ in net.named_parameters()]
        params = list(net.parameters())
        weights = [p.detach() for p in params]

        def loss_at(values: Sequence[torch.Tensor], batch: Batch, buffers: dict | None = None) -> torch.Tensor:
            x, y = batch
            state = dict(zip(names, values), **(buffers or {}))
            return F.cross_entropy(functional_call(net, state, (x,), {"weights": context.beta()}), y)

        train_grads = torch.autograd.grad(F.cross_entropy(net(train[0], weights=context.beta().detach()), train[1]), params)
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
