"""The exact NATS-Bench networks (both spaces) and their official-style cost counts.

`build_network` rebuilds what the benchmark trained, so `count_params` / `count_flops`
reproduce the records' `params` and `flop` fields exactly.
"""
from __future__ import annotations

from autohas.models.measure import count_flops, count_params
from autohas.models.networks import NatsNetwork, build_network

__all__ = ["NatsNetwork", "build_network", "count_flops", "count_params"]
