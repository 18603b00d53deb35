"""The `has` space of AutoHAS: nats-tss architectures x learning rate x weight decay.

Each hyperparameter is a basis of values, its default times MULTIPLIERS (the thesis'
vision basis, METHODS.md 3.6); AutoHAS learns a distribution over each basis, and a
derived continuous value is its expectation (Eq. 4.10). Defaults are NATS-Bench H0's:
learning rate 0.1 at batch 256, weight decay 5e-4. The architecture part is nats-tss:
derived architectures are nats-tss strings, looked up in nats-tss benchmarks.

As a `Space` its candidates are a nats-tss cell plus one basis value of each hyperparameter,
written `<cell>@lr=<v>,wd=<v>` (index = cell index x 81 + lr position x 9 + wd position), so
black-box searchers search it with `--evaluate train` (thesis Table 4.3's RS / Vizier columns).
"""
from __future__ import annotations

from autohas.errors import AutohasError
from autohas.spaces.base import Decision, Genotype, Space
from autohas.spaces.nats_tss import EDGES, NatsTopologySpace

NAME = "has"
ARCH_SPACE = "nats-tss"
MULTIPLIERS = (0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
DEFAULT_LR = 0.1
DEFAULT_WEIGHT_DECAY = 5e-4
REFERENCE_BATCH = 256  # the batch size DEFAULT_LR belongs to (H0); other batches scale it linearly


def basis(default: float) -> tuple[float, ...]:
    """The basis values default x MULTIPLIERS."""
    return tuple(default * m for m in MULTIPLIERS)


def _text(value: float) -> str:
    return f"{value:.6g}"


class HasSpace(Space):
    name = NAME
    summary = "architecture x hyperparameters: black-box searchers with --evaluate train, autohas, autohas-hp"
    tabular = False  # its hyperparameters change the numbers: no table holds them
    architecture_space = ARCH_SPACE
    hyperparameter_names = ("lr", "weight_decay")

    def __init__(self) -> None:
        self.cells = NatsTopologySpace()
        super().__init__(
            list(self.cells.decisions) + [Decision("lr", basis(DEFAULT_LR)), Decision("weight_decay", basis(DEFAULT_WEIGHT_DECAY))]
        )

    def encode(self, genotype: Genotype) -> str:
        self._check(genotype)
        cell = self.cells.encode(tuple(genotype[: len(EDGES)]))
        lr, wd = genotype[len(EDGES):]
        return f"{cell}@lr={_text(lr)},wd={_text(wd)}"

    def decode(self, arch: str) -> Genotype:
        cell, _, rest = arch.partition("@") if isinstance(arch, str) else ("", "", "")
        values = dict(part.partition("=")[::2] for part in rest.split(",")) if rest else {}
        hyper = []
        for key, decision in (("lr", self.decisions[-2]), ("wd", self.decisions[-1])):
            match = [c for c in decision.choices if _text(c) == values.get(key)]
            if not match or set(values) != {"lr", "wd"}:
                raise AutohasError(f"not a has candidate: {arch!r} (want <nats-tss cell>@lr=<v>,wd=<v>, values of "
                                   f"{[_text(c) for c in decision.choices]})")
            hyper.append(match[0])
        return self.cells.decode(cell) + tuple(hyper)

    def architecture(self, arch: str) -> str:
        return self.cells.encode(self.decode(arch)[: len(EDGES)])

    def hyperparameters(self, arch: str) -> dict[str, float]:
        return dict(zip(self.hyperparameter_names, self.decode(arch)[len(EDGES):]))

    def arch_to_index(self, arch: str) -> int:
        genotype = self.decode(arch)
        lr, wd = (d.choices.index(v) for d, v in zip(self.decisions[-2:], genotype[len(EDGES):]))
        return (self.cells.arch_to_index(self.cells.encode(genotype[: len(EDGES)])) * len(MULTIPLIERS) + lr) * len(MULTIPLIERS) + wd

    def index_to_arch(self, index: int) -> str:
        if not 0 <= int(index) < self.size:
            raise AutohasError(f"has index {index} out of range 0..{self.size - 1}")
        rest, wd = divmod(int(index), len(MULTIPLIERS))
        cell, lr = divmod(rest, len(MULTIPLIERS))
        genotype = self.cells.decode(self.cells.index_to_arch(cell))
        return self.encode(genotype + (self.decisions[-2].choices[lr], self.decisions[-1].choices[wd]))
