"""optuna samplers as Tune can keep them: Tune pickles the searcher (and with it the sampler) when it
starts an experiment and at every save, but optuna's genetic samplers hold a thread lock for their
generation cache. `PicklableNSGAIISampler` leaves the lock out of its pickled state and makes a new
one when it is read back; everything else (its seeded random state, its cache) is kept, so a resumed
search goes on exactly."""
from __future__ import annotations

import threading

from optuna.samplers import NSGAIISampler


class PicklableNSGAIISampler(NSGAIISampler):
    """optuna's NSGAIISampler, picklable."""

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()
