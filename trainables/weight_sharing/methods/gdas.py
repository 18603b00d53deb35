"""GDAS: one Gumbel-max sampled op per edge, its straight-through gradient to alpha."""
from __future__ import annotations

from dataclasses import dataclass

from autohas.trainables.weight_sharing.methods.base import Method, MethodContext, Settings
from autohas.trainables.weight_sharing.methods.draws import gdas_tau, gumbel_straight_through


@dataclass(frozen=True)
class GdasSettings(Settings):
    """The Gumbel temperature falls linearly from tau_max (first epoch) to tau_min (last)."""

    tau_max: float = 10.0
    tau_min: float = 0.1


class Gdas(Method):
    """Gumbel-max sampling of one op per edge (one sample per forward pass, shared by all cells).

    Both steps draw a fresh sample and pass its straight-through weights with it, as the
    reference's `forward_gdas`: the sampled op scaled by its weight plus the bare weight of
    every other op (0 forward; backward, a gradient to every alpha of the edge).
    """

    name = "gdas"
    Settings = GdasSettings

    def __init__(self, context: MethodContext, settings: GdasSettings | None = None) -> None:
        super().__init__(context, settings)
        self.tau = self.settings.tau_max

    def start_epoch(self, epoch: int) -> None:
        s = self.settings
        self.tau = gdas_tau(epoch, self.context.recipe.epochs, s.tau_max, s.tau_min)

    def arch_kwargs(self, differentiable: bool) -> dict:
        alpha = self.context.alpha if differentiable else self.context.alpha.detach()
        hard, indices = gumbel_straight_through(alpha, self.tau, self.context.generator)
        return {"weights": hard, "indices": indices}
