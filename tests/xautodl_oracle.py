"""The NATS-Bench authors' implementation (xautodl 1.0.0) as an oracle for autohas' supernets.

Builds the reference supernet with autohas' settings, maps parameter names between the
two, and replays autohas' random draws where the reference calls Python's `random`.
"""
from __future__ import annotations

import re

import torch

from autohas.spaces.nats_tss import EDGES, OPERATIONS

EDGE_KEYS = [f"{dst}<-{src}" for dst, src in EDGES]  # the reference's edge names, in autohas' edge order


def reference_tss_supernet(channels: int, cells_per_stage: int, num_classes: int, algo: str):
    """xautodl's GenericNAS201Model as NATS-Bench's search builds it (affine 0, BN statistics 0)."""
    from xautodl.models.cell_searchs.generic_model import GenericNAS201Model

    model = GenericNAS201Model(channels, cells_per_stage, 4, num_classes, list(OPERATIONS), False, False)
    model.set_algo(algo)
    return model


def to_reference_name(name: str) -> str:
    """autohas TssSupernet state name -> GenericNAS201Model state name."""
    name = re.sub(r"^stem\.", "_stem.", name)
    match = re.match(r"^cells\.(\d+)\.edges\.(\d+)\.candidates\.(\d+)\.(.*)$", name)
    if match:
        cell, edge, op, rest = match.groups()
        return f"_cells.{cell}.edges.{EDGE_KEYS[int(edge)]}.{op}.{rest}"
    return re.sub(r"^cells\.", "_cells.", name)


def reference_state(supernet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """autohas' supernet state under the reference's names."""
    return {to_reference_name(name): value for name, value in supernet.state_dict().items()}


def load_into_reference(supernet: torch.nn.Module, alpha: torch.Tensor | None, reference: torch.nn.Module) -> None:
    """Copy autohas' weights (and alpha, unless ENAS) into the reference model; every name must match."""
    state = reference_state(supernet)
    if alpha is not None:
        state["arch_parameters"] = alpha.detach().clone()
    missing, unexpected = reference.load_state_dict(state, strict=False)
    allowed = {n for n in missing if n.startswith("controller.")} | ({"arch_parameters"} if alpha is None else set())
    assert set(missing) <= allowed and not unexpected, (missing, unexpected)


class TorchRandom:
    """Stands in for Python's `random` module inside the reference: the same draws as autohas'
    generator, one `randint` per `choice` and one `randperm` per `sample`."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def choice(self, seq):
        return seq[int(torch.randint(len(seq), (1,), generator=self.generator))]

    def sample(self, population, k):
        return [population[i] for i in torch.randperm(len(population), generator=self.generator)[:k].tolist()]

    def random(self) -> float:  # the reference's verbose print only
        return 1.0
