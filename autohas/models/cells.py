"""The NATS-Bench inference cell: a fixed 4-node DAG whose 6 edges carry the searched ops."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from autohas.models.ops import OPS
from autohas.spaces.nats_tss import EDGES


class InferCell(nn.Module):
    """Node 0 is the input; node i sums op_{j->i}(node j) over j < i; node 3 is the output.

    Edges leaving node 0 map c_in -> c_out, all others c_out -> c_out: in nats-sss a cell's
    input and output widths differ, and only the first hop may change it.
    """

    def __init__(self, ops: Sequence[str], c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> None:
        super().__init__()
        if len(ops) != len(EDGES):
            raise ValueError(f"a cell needs {len(EDGES)} edge operations, got {len(ops)}")
        self.edges = EDGES
        self.layers = nn.ModuleList(
            OPS[op](c_in, c_out, stride, affine) if src == 0 else OPS[op](c_out, c_out, 1, affine)
            for op, (_, src) in zip(ops, EDGES)
        )
        self.num_nodes = 1 + max(dst for dst, _ in EDGES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in range(1, self.num_nodes):
            total = None
            for layer, (dst, src) in zip(self.layers, self.edges):
                if dst == node:
                    out = layer(nodes[src])
                    total = out if total is None else total + out
            nodes.append(total)
        return nodes[-1]
