"""RSPS: random sampling with parameter sharing (no architecture parameters)."""
from __future__ import annotations

import torch

from autohas.trainables.weight_sharing.methods.base import Batch, Method
from autohas.trainables.weight_sharing.methods.draws import distinct_random_architectures, node_edges, uniform_architecture, uniform_ops

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
        generator = self.context.generator
        indices = [0] * self.context.supernet.shape[0]
        for edges in node_edges():
            while True:
                ops = uniform_ops(len(edges), len(OPERATIONS), generator)
                if any(op != none for op in ops):
                    break
            for e, op in zip(edges, ops):
                indices[e] = op
        return indices

    def arch_kwargs(self, differentiable: bool) -> dict:
        return {"indices": [self.cell_architecture() for _ in range(self.context.supernet.search_cells)]}

    def arch_step(self, train: Batch, valid: Batch) -> None:
        """Nothing to learn; the reference still runs a fresh sample on the validation batch, which
        moves the BN running estimates of the stem and residual blocks: so does this."""
        with torch.no_grad():
            self.context.supernet(valid[0], **self.arch_kwargs(False))

    def sample_candidate(self) -> list[int]:
        edges, ops = self.context.supernet.shape
        return uniform_architecture(edges, ops, self.context.generator)

    def candidates(self, count: int) -> list[list[int]]:
        edges, ops = self.context.supernet.shape
        return distinct_random_architectures(count, edges, ops, self.context.generator)
