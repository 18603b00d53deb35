"""Every weight-sharing method by name: the NATS-Bench baselines (both spaces), SANAS, LeaSE and AutoHAS."""
from __future__ import annotations

from trainables.weight_sharing.autohas import AutoHas, AutoHasHp
from trainables.weight_sharing.explained import Lease, SanasDarts, SanasGdas
from trainables.weight_sharing.methods import BASE_METHODS, Method
from trainables.weight_sharing.size_methods import SIZE_METHODS

METHODS: dict[str, type[Method]] = {
    **BASE_METHODS,
    **{m.name: m for m in (SanasDarts, SanasGdas, Lease, AutoHas, AutoHasHp)},
    **SIZE_METHODS,
}
