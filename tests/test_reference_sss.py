"""The nats-sss methods against the NATS-Bench authors' implementation (xautodl 1.0.0's
`GenericNAS301Model`, driven as AutoDL-Projects `exps/NATS-algos/search-size.py` drives it).

Both sides get the same weights (through a tested name mapping), the same batches and the
same random draws (autohas' generator and torch's global one seeded alike; the reference's
Python `random` replaced by draws from torch's global generator in autohas' order), in float64.
The script itself needs CUDA, so `reference_step` replays its `search_func` and `main` lines.
"""
from __future__ import annotations

import dataclasses
import re

import pytest
import torch
import torch.nn.functional as F

from autohas.spaces.nats_sss import CELL, CHANNELS, NUM_LAYERS
from autohas.trainables.weight_sharing.search import SearchRecipe, SearchSetup, SupernetSearch, method_settings

pytest.importorskip("xautodl", reason="xautodl==1.0.0 (pip install --no-deps) is the oracle; the README's set-up installs it")

CLASSES = 10
REFERENCE_ALGO = {"tas": "tas", "mask-gumbel": "mask_gumbel", "mask-sample": "mask_rl"}
ALGOS = list(REFERENCE_ALGO)
RECIPE = SearchRecipe(epochs=4, steps_per_epoch=2, batch_size=8, eval_batch_size=8)
REFERENCE_ONLY = {"_arch_parameters", "_tau", "_masks"}  # the reference's algorithm state, compared apart


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from autohas.data import load_splits

    return load_splits("digits", cache_dir=str(tmp_path_factory.mktemp("cache")))


def to_reference_name(name: str) -> str:
    """autohas SssSupernet state name -> GenericNAS301Model state name (its `_cells` holds the stem first)."""
    if name.startswith("stem."):
        return "_cells.0." + name[len("stem."):]
    match = re.match(r"^cells\.(\d+)\.(.*)$", name)
    return f"_cells.{int(match[1]) + 1}.{match[2]}" if match else name


def from_reference_name(name: str) -> str:
    match = re.match(r"^_cells\.(\d+)\.(.*)$", name)
    if not match:
        return name
    module = int(match[1])
    return f"stem.{match[2]}" if module == 0 else f"cells.{module - 1}.{match[2]}"


def close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(a.double(), b.double(), rtol=1e-5, atol=1e-9, msg=lambda m: f"{what}: {m}")


def batch(seed: int, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(size, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(CLASSES, (size,), generator=g)


class TorchRandom:
    """The reference's Python `random`, drawing from torch's global generator as autohas draws from its own."""

    @staticmethod
    def random() -> float:
        return float(torch.rand((), dtype=torch.float64))

    @staticmethod
    def randint(a: int, b: int) -> int:
        return a + int(torch.randint(b - a + 1, ()))


class ExponentialMovingAverage:
    """search-size.py's RL baseline: a moving average over (numerator, denominator)."""

    def __init__(self, momentum: float) -> None:
        self.numerator, self.denominator, self.momentum = 0.0, 0.0, momentum

    def update(self, value: float) -> None:
        self.numerator = self.momentum * self.numerator + (1 - self.momentum) * value
        self.denominator = self.momentum * self.denominator + (1 - self.momentum)

    @property
    def value(self) -> float:
        return self.numerator / self.denominator


def reference_model(algo: str):
    """The search model as search-size.py builds it (default genotype, affine 0, track_running_stats 0)."""
    from xautodl.config_utils import dict2config
    from xautodl.models import get_cell_based_tiny_net, get_search_spaces

    space = get_search_spaces("sss", "nats-bench")
    config = dict2config(
        dict(name="generic", super_type="search-shape", candidate_Cs=space["candidates"], max_num_Cs=space["numbers"],
             num_classes=CLASSES, genotype=CELL, affine=False, track_running_stats=False), None)
    model = get_cell_based_tiny_net(config)
    model.set_algo(algo)
    return model


class Pair:
    """An autohas search and the reference search model with the same weights and alpha, in float64."""

    def __init__(self, digits, algo: str, recipe: SearchRecipe = RECIPE, alpha_scale: float = 1.0, warmup_ratio: float = 0.0) -> None:
        from xautodl.config_utils import dict2config
        from xautodl.procedures.optimizers import get_optim_scheduler

        torch.set_num_threads(1)
        self.algo, self.ref_algo, self.recipe = algo, REFERENCE_ALGO[algo], recipe
        self.settings = method_settings(algo, warmup_ratio=warmup_ratio)
        self.search = SupernetSearch(
            SearchSetup("nats-sss", "digits", None, algo, 0, recipe=recipe, settings=self.settings), splits=digits
        )
        self.search.supernet.double()
        # a peaked alpha, so that tempered and untempered probabilities differ visibly
        alpha = torch.randn(self.search.alpha.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        self.search.alpha.data = alpha * alpha_scale
        self.ref = reference_model(self.ref_algo).double()
        state = {to_reference_name(n): v.clone() for n, v in self.search.supernet.state_dict().items()}
        state["_arch_parameters"] = self.search.alpha.detach().clone()
        missing, unexpected = self.ref.load_state_dict(state, strict=False)
        assert set(missing) == {"_tau", "_masks"} and not unexpected, (missing, unexpected)
        # the weights: search-size.py's get_optim_scheduler over configs/nas-benchmark/algos/weight-sharing.config
        config = dict2config(
            dict(scheduler="cos", LR=0.025, eta_min=0.001, epochs=recipe.epochs, warmup=0, optim="SGD", decay=0.0005,
                 momentum=0.9, nesterov=True, criterion="Softmax"), None)
        self.w_optimizer, self.scheduler, _ = get_optim_scheduler(self.ref.weights, config)
        # alpha: its Adam, argparse defaults; mask_rl's command lines give --arch_weight_decay 0
        self.a_optimizer = torch.optim.Adam(
            self.ref.alphas, lr=3e-4, betas=(0.5, 0.999), weight_decay=0 if self.ref_algo == "mask_rl" else 1e-3, eps=1e-8
        )
        self.ema = ExponentialMovingAverage(0.95)

    def seed(self, seed: int, monkeypatch) -> None:
        from xautodl.models.shape_searchs import generic_size_tiny_cell_model

        self.search.generator.manual_seed(seed)
        torch.manual_seed(seed)
        monkeypatch.setattr(generic_size_tiny_cell_model, "random", TorchRandom)

    def reference_epoch(self, epoch: int) -> bool:
        """main()'s per-epoch settings: scheduler, warm-up, tau; whether the controller learns."""
        total, ratio = self.recipe.epochs, self.settings.warmup_ratio or None
        self.scheduler.update(epoch, 0.0)
        if ratio is None or ratio <= float(epoch) / total:
            enable = True
            self.ref.set_warmup_ratio(None)
        else:
            enable = False
            self.ref.set_warmup_ratio(1.0 - float(epoch) / total / ratio)
        if self.ref_algo in ("mask_gumbel", "tas"):
            s = self.settings
            self.ref.set_tau(s.tau_max - (s.tau_max - s.tau_min) * epoch / (total - 1))
        return enable

    def reference_step(self, epoch: int, train, valid) -> None:
        """One iteration of search_func (its first of the epoch)."""
        from xautodl.utils import obtain_accuracy

        net = self.ref
        enable = self.reference_epoch(epoch)
        net.train()
        self.scheduler.update(None, 0.0)
        net.zero_grad()
        _, logits, _ = net(train[0])
        F.cross_entropy(logits, train[1]).backward()
        self.w_optimizer.step()
        net.zero_grad()
        self.a_optimizer.zero_grad()
        _, logits, log_probs = net(valid[0])
        (prec1,) = obtain_accuracy(logits.data, valid[1].data, topk=(1,))
        if self.ref_algo == "mask_rl":
            with torch.no_grad():
                self.ema.update(prec1.item())
                advantage = prec1 - self.ema.value
            arch_loss = -advantage * sum(log_probs)
        else:
            arch_loss = F.cross_entropy(logits, valid[1])
        if enable:
            arch_loss.backward()
            self.a_optimizer.step()

    def autohas_step(self, epoch: int, train, valid) -> None:
        search = self.search
        search.supernet.train()
        search.method.start_epoch(epoch)
        search.set_epoch_lr(epoch)
        search.method.step(train, valid)

    def compare_state(self, what: str) -> None:
        theirs = self.ref.state_dict()
        for name, value in self.search.supernet.state_dict().items():
            close(value, theirs[to_reference_name(name)], f"{what} {name}")
        close(self.search.alpha.detach(), self.ref._arch_parameters.detach(), f"{what} alpha")
        if self.algo == "mask-sample":
            assert self.search.method.baseline.value == pytest.approx(self.ema.value, rel=1e-12)


def test_state_names_map_one_to_one_and_every_layer_is_built_as_the_reference(digits):
    pair = Pair(digits, "tas")
    mine, theirs = pair.search.supernet.state_dict(), pair.ref.state_dict()
    assert {to_reference_name(n) for n in mine} == set(theirs) - REFERENCE_ONLY
    assert {from_reference_name(n) for n in set(theirs) - REFERENCE_ONLY} == set(mine)
    assert all(from_reference_name(to_reference_name(n)) == n for n in mine)
    for name, value in mine.items():
        assert value.shape == theirs[to_reference_name(name)].shape, name
    # parameters and buffers each map onto their kind, and the reference's extras are the algorithm's state
    assert {to_reference_name(n) for n, _ in pair.search.supernet.named_parameters()} == {
        n for n, _ in pair.ref.named_parameters()} - {"_arch_parameters"}
    assert {to_reference_name(n) for n, _ in pair.search.supernet.named_buffers() if n != "masks"} == {
        n for n, _ in pair.ref.named_buffers()} - {"_tau", "_masks"}
    assert torch.equal(pair.search.supernet.masks, pair.ref._masks)
    assert pair.search.alpha.shape == pair.ref._arch_parameters.shape == (NUM_LAYERS, len(CHANNELS))
    # BN: affine and running estimates per layer as the reference (its residual blocks affine, tracking)
    modules = dict(pair.ref.named_modules())
    norms = 0
    for name, module in pair.search.supernet.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            ref = modules[to_reference_name(name + ".")[:-1]]
            assert (module.affine, module.track_running_stats) == (ref.affine, ref.track_running_stats), name
            norms += 1
    assert norms == sum(isinstance(m, torch.nn.BatchNorm2d) for m in modules.values())


def weight_grads(pair: Pair) -> tuple[dict, dict]:
    """Every weight's gradient on both sides, under the reference's names."""
    mine = {to_reference_name(n): p.grad for n, p in pair.search.supernet.named_parameters()}
    theirs = dict(pair.ref.named_parameters())
    return mine, {n: theirs[n].grad for n in mine}


@pytest.mark.parametrize("algo", ALGOS)
def test_forward_losses_and_gradients_equal_the_reference(digits, algo, monkeypatch):
    pair = Pair(digits, algo)
    search, method = pair.search, pair.search.method
    epoch = 1  # tau between its ends
    method.start_epoch(epoch)
    pair.reference_epoch(epoch)
    if algo != "mask-sample":  # the temperature of the Gumbel methods
        assert float(pair.ref.tau) == pytest.approx(method.tau, rel=1e-12)
    search.supernet.train()
    pair.ref.train()
    train, valid = batch(1), batch(2)
    # the weight step's forward, loss and gradients
    pair.seed(11, monkeypatch)
    search.supernet.zero_grad()
    logits = method.weights_forward(train[0])
    loss = F.cross_entropy(logits, train[1])
    loss.backward()
    pair.ref.zero_grad()
    _, ref_logits, _ = pair.ref(train[0])
    ref_loss = F.cross_entropy(ref_logits, train[1])
    ref_loss.backward()
    close(logits, ref_logits, "weight forward")
    close(loss, ref_loss, "weight loss")
    mine, theirs = weight_grads(pair)
    for name, grad in mine.items():
        close(grad, theirs[name], f"weight grad {name}")
    # the architecture's loss and alpha's gradient on the validation batch
    pair.seed(12, monkeypatch)
    pair.ref.zero_grad()
    _, ref_logits, log_probs = pair.ref(valid[0])
    captured = {}
    monkeypatch.setattr(method, "_alpha_step", lambda g: captured.setdefault("grad", g))
    if algo == "mask-sample":
        from xautodl.utils import obtain_accuracy

        for value in (25.0, 50.0):  # a baseline with history on both sides: the advantage is not zero
            method.baseline.update(value)
            pair.ema.update(value)
        pair.ema.update(obtain_accuracy(ref_logits.data, valid[1], topk=(1,))[0].item())
        ref_loss = -(obtain_accuracy(ref_logits.data, valid[1], topk=(1,))[0] - pair.ema.value) * sum(log_probs)
        ref_loss.backward()
        pair.seed(12, monkeypatch)
        method.arch_step(train, valid)
        assert method.baseline.value == pytest.approx(pair.ema.value, rel=1e-12)
    else:
        ref_loss = F.cross_entropy(ref_logits, valid[1])
        ref_loss.backward()
        pair.seed(12, monkeypatch)
        x, y = valid
        arch_logits = search.supernet(x, **method.arch_kwargs(True))
        close(arch_logits, ref_logits, "architecture forward")
        pair.seed(12, monkeypatch)
        close(method.arch_loss(valid), ref_loss, "architecture loss")
        pair.seed(12, monkeypatch)
        method.arch_step(train, valid)
    assert captured["grad"].abs().max() > 0
    close(captured["grad"], pair.ref._arch_parameters.grad, "alpha grad")


@pytest.mark.parametrize("algo", ALGOS)
def test_whole_search_steps_equal_the_reference(digits, algo, monkeypatch):
    pair = Pair(digits, algo)
    seed = 100
    for epoch in range(pair.recipe.epochs):
        for step in range(2):
            seed += 1
            train, valid = batch(seed), batch(seed + 1000)
            pair.seed(seed, monkeypatch)
            pair.autohas_step(epoch, train, valid)
            pair.seed(seed, monkeypatch)
            pair.reference_step(epoch, train, valid)
            pair.compare_state(f"epoch {epoch} step {step}")
    # the architecture optimiser is the reference's
    mine, theirs = pair.search.a_optimizer.param_groups[0], pair.a_optimizer.param_groups[0]
    for key in ("lr", "betas", "eps", "weight_decay"):
        assert mine[key] == theirs[key], key


@pytest.mark.parametrize("algo", ALGOS)
def test_derived_architecture_is_the_reference_genotype(digits, algo):
    pair = Pair(digits, algo, alpha_scale=0.01)
    assert pair.search.supernet.arch(pair.search.derive()) == pair.ref.genotype
    assert len(set(pair.search.derived)) > 2  # a random alpha: not a trivial architecture


@pytest.mark.parametrize("ratio,epochs", [(0.5, 10), (0.25, 7), (0.28, 25)])  # in floats 7 < 0.28 * 25, yet 0.28 <= 7 / 25
def test_warm_up_epochs_and_widest_probability_are_the_reference(digits, ratio, epochs):
    pair = Pair(digits, "tas", recipe=dataclasses.replace(RECIPE, epochs=epochs), warmup_ratio=ratio)
    for epoch in range(epochs):
        enable = pair.reference_epoch(epoch)
        pair.search.method.start_epoch(epoch)
        assert pair.search.method.warming == (not enable), epoch
        if not enable:
            assert pair.search.method.widest_probability == pair.ref.warmup_ratio


@pytest.mark.parametrize("algo", ALGOS)
def test_warm_up_steps_equal_the_reference(digits, algo, monkeypatch):
    """Each module of each forward: the widest width with probability 1 - e / (T r), else a random one;
    alpha frozen; the residual blocks' BN estimates (and mask-sample's baseline) still move."""
    pair = Pair(digits, algo, recipe=dataclasses.replace(RECIPE, epochs=10), warmup_ratio=0.5)
    method = pair.search.method
    drawn = []
    widths = method.warmup_widths
    monkeypatch.setattr(method, "warmup_widths", lambda: drawn.append(widths()) or drawn[-1])
    alpha = pair.search.alpha.detach().clone()
    seed = 300
    for epoch in (0, 3, 4):  # widest probability 1, 0.4, 0.2
        for _ in range(2):
            seed += 1
            train, valid = batch(seed), batch(seed + 1000)
            pair.seed(seed, monkeypatch)
            pair.autohas_step(epoch, train, valid)
            pair.seed(seed, monkeypatch)
            pair.reference_step(epoch, train, valid)
            pair.compare_state(f"warm-up epoch {epoch}")
    assert torch.equal(pair.search.alpha.detach(), alpha)
    assert len(drawn) == 12 and all(len(d) == NUM_LAYERS + 1 for d in drawn)
    assert all(d == [7] * 6 for d in drawn[:4])  # epoch 0: the widest only
    assert any(w != 7 for d in drawn[4:] for w in d)  # later: random widths too
    if algo == "mask-sample":
        assert pair.ema.denominator > 0 and method.baseline.value == pytest.approx(pair.ema.value, rel=1e-12)
