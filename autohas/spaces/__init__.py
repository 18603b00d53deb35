"""Search-space registry: `get_space(name)` returns the (cached) space object."""
from __future__ import annotations

from functools import cache

from autohas.errors import AutohasError
from autohas.spaces.base import Decision, Space
from autohas.spaces.nats_sss import NatsSizeSpace
from autohas.spaces.nats_tss import NatsTopologySpace

_SPACES = {cls.name: cls for cls in (NatsTopologySpace, NatsSizeSpace)}
SPACE_NAMES: tuple[str, ...] = tuple(_SPACES)


@cache
def get_space(name: str) -> Space:
    try:
        return _SPACES[name]()
    except KeyError:
        raise AutohasError(f"unknown space {name!r}; choose from: {', '.join(SPACE_NAMES)}") from None


__all__ = ["Decision", "Space", "SPACE_NAMES", "get_space"]
