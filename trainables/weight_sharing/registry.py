"""Every weight-sharing method by name (one line each): the NATS-Bench baselines of both spaces,
SANAS, LeaSE and AutoHAS. The command line lists the same names in `__init__.py` without torch."""
from __future__ import annotations

from autohas.trainables.weight_sharing.methods.autohas import AutoHas, AutoHasHp
from autohas.trainables.weight_sharing.methods.base import Method
from autohas.trainables.weight_sharing.methods.darts import DartsV1, DartsV2
from autohas.trainables.weight_sharing.methods.enas import Enas
from autohas.trainables.weight_sharing.methods.explained import Lease, SanasDarts, SanasGdas
from autohas.trainables.weight_sharing.methods.gdas import Gdas
from autohas.trainables.weight_sharing.methods.rsps import RandomSampling
from autohas.trainables.weight_sharing.methods.setn import Setn
from autohas.trainables.weight_sharing.methods.size import MaskGumbel, MaskSample, Tas

METHODS: dict[str, type[Method]] = {
    method.name: method
    for method in (
        DartsV1,
        DartsV2,
        Gdas,
        RandomSampling,
        Setn,
        Enas,
        SanasDarts,
        SanasGdas,
        Lease,
        AutoHas,
        AutoHasHp,
        Tas,
        MaskGumbel,
        MaskSample,
    )
}
