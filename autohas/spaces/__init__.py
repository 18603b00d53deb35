"""Search-space registry: `get_space(name)` returns the (cached) space object; `register_space`
adds a user's own, which every searcher then proposes, saves and restores by name."""
from __future__ import annotations

from typing import Callable

from autohas.errors import AutohasError
from autohas.spaces.base import Decision, Space
from autohas.spaces.has import HasSpace
from autohas.spaces.nats_sss import NatsSizeSpace
from autohas.spaces.nats_tss import NatsTopologySpace

SPACE_NAMES: tuple[str, ...] = (NatsTopologySpace.name, NatsSizeSpace.name)  # NATS-Bench's, which benchmarks hold
_FACTORIES: dict[str, Callable[[], Space]] = {cls.name: cls for cls in (NatsTopologySpace, NatsSizeSpace, HasSpace)}
_INSTANCES: dict[str, Space] = {}


def register_space(space: Space | Callable[[], Space], name: str | None = None, replace: bool = False) -> None:
    """Make a space known by name: a Space object, or a class / factory building one (called on first use).

    In a Ray cluster, register it in code every worker imports (e.g. the module defining it), since
    searchers restore their space by name."""
    name = name or getattr(space, "name", "")
    if not name:
        raise AutohasError("a space needs a name to be registered")
    if name in _FACTORIES and not replace:
        raise AutohasError(f"a space named {name!r} is already registered (replace=True to replace it)")
    _FACTORIES[name] = space if not isinstance(space, Space) else (lambda: space)
    _INSTANCES.pop(name, None)


def space_names() -> tuple[str, ...]:
    """Every registered space's name, built-in first."""
    return tuple(_FACTORIES)


def get_space(name: str) -> Space:
    if name not in _INSTANCES:
        try:
            factory = _FACTORIES[name]
        except (KeyError, TypeError):
            raise AutohasError(f"unknown space {name!r}; choose from: {', '.join(space_names())}") from None
        _INSTANCES[name] = factory()
    return _INSTANCES[name]


def architecture_space_of(name: str) -> str:
    """The space whose networks and benchmarks the candidates of space `name` use."""
    return get_space(name).architecture_space


__all__ = ["architecture_space_of", "Decision", "HasSpace", "Space", "SPACE_NAMES", "get_space", "register_space", "space_names"]
