"""SETN: weights on uniformly random architectures, alpha by the mixture, the top-100 as candidates."""
from __future__ import annotations

import torch

from autohas.trainables.weight_sharing.methods.base import Method
from autohas.trainables.weight_sharing.methods.draws import most_probable_architectures, uniform_architecture

class Setn(Method):
    """SETN: weights trained on uniformly random architectures (one per step, shared by all cells);
    alpha by the mixture gradient on the validation batch; the final pick is the best, each
    on its own validation batch, of the 100 most probable architectures under softmax(alpha)."""

    name = "setn"
    default_selection = "sampled"

    def weights_forward(self, x: torch.Tensor) -> torch.Tensor:
        edges, ops = self.context.supernet.shape
        return self.context.supernet(x, indices=uniform_architecture(edges, ops, self.context.generator))

    def candidates(self, count: int) -> list[list[int]]:
        return most_probable_architectures(self.context.alpha, count)
