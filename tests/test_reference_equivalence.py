"""autohas' nats-tss weight-sharing methods against the NATS-Bench authors' code, step by step.

The oracle is xautodl 1.0.0's GenericNAS201Model, driven as AutoDL-Projects'
`exps/NATS-algos/search-cell.py` drives it (`search_func`, `backward_step_unrolled`,
`train_controller`, `get_best_arch`; that script needs CUDA, so its few lines of loop are
replayed here around the reference model). Both sides get the same weights, the same
batches and the same random draws (torch's global generator and Python's `random` of the
reference replay autohas' generator), in float64; everything is compared to rel 1e-6.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.xautodl_oracle import TorchRandom, load_into_reference, reference_state, reference_tss_supernet, to_reference_name
from autohas.trainables.weight_sharing.methods.enas import EnasSettings
from autohas.trainables.weight_sharing.search import SearchRecipe, SearchSetup, SupernetSearch, arch_of

pytest.importorskip("xautodl", reason="xautodl==1.0.0 (pip install --no-deps) is the oracle; the README's set-up installs it")

RECIPE = SearchRecipe(
    epochs=4, channels=4, cells_per_stage=1, steps_per_epoch=1, eval_batches=1, candidates=100,
    batch_size=8, eval_batch_size=16,
)
ENAS = EnasSettings(controller_steps=2, aggregate=3)
REFERENCE_ALGO = {"darts-v1": "darts-v1", "darts-v2": "darts-v2", "gdas": "gdas", "setn": "setn", "rsps": "random", "enas": "enas"}
CLASSES = 10


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from autohas.data import load_splits

    return load_splits("digits", cache_dir=str(tmp_path_factory.mktemp("cache")))


def close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9, msg=lambda m: f"{what}: {m}")


def batch(seed: int, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(size, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(CLASSES, (size,), generator=g)


def reference_weight_optimiser(ref, recipe: SearchRecipe):
    """search-cell.py's SGD and cosine over configs/nas-benchmark/algos/weight-sharing.config (epochs: the recipe's)."""
    from xautodl.config_utils import dict2config
    from xautodl.procedures.optimizers import get_optim_scheduler

    config = dict2config(
        dict(scheduler="cos", LR=0.025, eta_min=0.001, epochs=recipe.epochs, warmup=0, optim="SGD", decay=0.0005,
             momentum=0.9, nesterov=True, criterion="Softmax"), None)
    optimizer, scheduler, _ = get_optim_scheduler(ref.weights, config)
    return optimizer, scheduler


class Pair:
    """An autohas search and the reference model with the same weights, both in float64."""

    def __init__(self, digits, algo: str, recipe: SearchRecipe = RECIPE, randomise_alpha: bool = False) -> None:
        torch.set_num_threads(1)
        self.algo, self.ref_algo = algo, REFERENCE_ALGO[algo]
        settings = ENAS if algo == "enas" else None
        self.search = SupernetSearch(SearchSetup("nats-tss", "digits", None, algo, 0, recipe=recipe, settings=settings), splits=digits)
        self.search.supernet.double()
        self.search.alpha.data = self.search.alpha.data.double()
        if randomise_alpha:
            self.search.alpha.data = torch.randn(self.search.alpha.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        self.ref = reference_tss_supernet(recipe.channels, recipe.cells_per_stage, CLASSES, self.ref_algo).double()
        enas = algo == "enas"
        load_into_reference(self.search.supernet, None if enas else self.search.alpha, self.ref)
        if enas:
            self.search.method.controller.double()
            self.ref.controller.load_state_dict(self.search.method.controller.state_dict())
        self.w_optimizer, self.scheduler = reference_weight_optimiser(self.ref, recipe)
        self.a_optimizer = torch.optim.Adam(  # search-cell.py's; its ENAS command line: lr 1e-3, decay 0, eps 1e-3
            self.ref.alphas, lr=1e-3 if enas else 3e-4, betas=(0.5, 0.999), weight_decay=0 if enas else 1e-3, eps=1e-3 if enas else 1e-8
        )

    # the reference's calculation modes, as search_func sets them
    def weight_mode(self) -> None:
        algo = self.ref_algo
        if algo == "setn":
            self.ref.set_cal_mode("dynamic", self.ref.dync_genotype(True))
        elif algo == "enas":
            with torch.no_grad():
                self.ref.controller.eval()
                _, _, arch = self.ref.controller()
            self.ref.set_cal_mode("dynamic", arch)
        else:
            self.ref.set_cal_mode({"gdas": "gdas", "random": "urs"}.get(algo, "joint"))

    def arch_mode(self) -> None:
        self.ref.set_cal_mode({"gdas": "gdas", "random": "urs"}.get(self.ref_algo, "joint"))

    def seed(self, seed: int) -> None:
        """The same draws on both sides: autohas' generator, torch's global one, Python's `random` of the reference."""
        from xautodl.models.cell_searchs import generic_model, search_cells

        self.search.generator.manual_seed(seed)
        torch.manual_seed(seed)
        shim = TorchRandom(torch.Generator().manual_seed(seed))
        generic_model.random = search_cells.random = shim

    def compare_state(self, what: str) -> None:
        mine = reference_state(self.search.supernet)
        theirs = self.ref.state_dict()
        for name, value in mine.items():
            close(value.double() if value.is_floating_point() else value.double(), theirs[name].double(), f"{what} {name}")
        if self.algo != "enas":
            close(self.search.alpha.detach(), self.ref.arch_parameters.detach(), f"{what} alpha")


def reference_unrolled_step(pair: Pair, train, valid) -> None:
    """search-cell.py's `backward_step_unrolled` and `_hessian_vector_product` on the reference model."""
    net, w_optimizer = pair.ref, pair.w_optimizer
    (xt, yt), (xv, yv) = train, valid
    loss = F.cross_entropy(net(xt)[1], yt)
    group = w_optimizer.param_groups[0]
    lr, decay, momentum = group["lr"], group["weight_decay"], group["momentum"]
    with torch.no_grad():
        theta = torch.cat([w.view(-1) for w in net.weights])
        try:
            moment = torch.cat([w_optimizer.state[w]["momentum_buffer"].view(-1) for w in net.weights]) * momentum
        except KeyError:
            moment = torch.zeros_like(theta)
    dtheta = torch.cat([g.view(-1) for g in torch.autograd.grad(loss, net.weights)]) + decay * theta
    params = (theta - lr * (moment + dtheta)).detach()
    unrolled = copy.deepcopy(net)
    state, offset = unrolled.state_dict(), 0
    for name, value in net.named_parameters():
        if "arch_parameters" in name:
            continue
        state[name] = params[offset: offset + value.numel()].view(value.size())
        offset += value.numel()
    unrolled.load_state_dict(state)
    unrolled.zero_grad()
    F.cross_entropy(unrolled(xv)[1], yv).backward()
    dalpha = unrolled.arch_parameters.grad
    vector = [w.grad for w in unrolled.weights]
    r = 1e-2 / torch.cat([v.view(-1) for v in vector]).norm()
    grads = []
    for sign in (1.0, -2.0, 1.0):
        with torch.no_grad():
            for w, v in zip(net.weights, vector):
                w.add_(sign * r * v)
        if len(grads) < 2:
            grads.append(torch.autograd.grad(F.cross_entropy(net(xt)[1], yt), net.alphas)[0])
    net.arch_parameters.grad = dalpha - lr * (grads[0] - grads[1]) / (2 * r)


def reference_search_step(pair: Pair, epoch: int, train, valid) -> None:
    """One iteration of search-cell.py's `search_func` (epoch-start scheduler update included)."""
    net = pair.ref
    net.train()
    pair.scheduler.update(epoch, 0.0)
    pair.scheduler.update(None, 0.0)
    pair.weight_mode()
    net.zero_grad()
    F.cross_entropy(net(train[0])[1], train[1]).backward()
    pair.w_optimizer.step()
    if pair.ref_algo != "enas":  # ENAS keeps the weight step's sample
        pair.arch_mode()
    net.zero_grad()
    if pair.ref_algo == "darts-v2":
        reference_unrolled_step(pair, train, valid)
        pair.a_optimizer.step()
    elif pair.ref_algo in ("random", "enas"):
        with torch.no_grad():
            net(valid[0])
    else:
        F.cross_entropy(net(valid[0])[1], valid[1]).backward()
        pair.a_optimizer.step()


def autohas_search_step(pair: Pair, epoch: int, train, valid) -> None:
    search = pair.search
    search.supernet.train()
    search.method.start_epoch(epoch)
    search.set_epoch_lr(epoch)
    search.method.step(train, valid)


METHODS = ["darts-v1", "darts-v2", "gdas", "setn", "rsps", "enas"]


def test_state_names_map_one_to_one(digits):
    pair = Pair(digits, "gdas")
    mapped = set(reference_state(pair.search.supernet))
    assert mapped == set(pair.ref.state_dict()) - {"arch_parameters"}
    assert len(mapped) == len(pair.search.supernet.state_dict())
    assert to_reference_name("cells.1.edges.2.candidates.3.op.1.weight") == "_cells.1.edges.2<-1.3.op.1.weight"
    # BN as the reference: running estimates in the stem and residual blocks only
    assert "_stem.1.running_mean" in mapped and "_cells.1.conv_a.op.2.running_mean" in mapped
    assert not any("edges" in name and "running" in name for name in mapped)


@pytest.mark.parametrize("algo", METHODS)
def test_forward_losses_and_gradients_equal_the_reference(digits, algo):
    pair = Pair(digits, algo, randomise_alpha=True)
    search, net = pair.search, pair.ref
    params = list(search.supernet.parameters())
    names = [to_reference_name(n) for n, _ in search.supernet.named_parameters()]
    ref_params = dict(net.named_parameters())
    train, valid = batch(1), batch(2)
    search.supernet.train()
    net.train()
    search.method.start_epoch(1)
    net.set_tau(search.method.tau if algo == "gdas" else None)

    pair.seed(11)
    logits = search.method.weights_forward(train[0])
    loss = F.cross_entropy(logits, train[1])
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    pair.seed(11)
    pair.weight_mode()
    ref_logits = net(train[0])[1]
    ref_loss = F.cross_entropy(ref_logits, train[1])
    ref_grads = torch.autograd.grad(ref_loss, [ref_params[n] for n in names], allow_unused=True)
    close(logits, ref_logits, "weight-step logits")
    close(loss, ref_loss, "weight loss")
    for name, p, g, r in zip(names, params, grads, ref_grads):
        zero = torch.zeros_like(p)
        close(zero if g is None else g, zero if r is None else r, f"weight gradient {name}")

    if algo in ("rsps", "enas"):
        return  # no architecture loss in the search step
    pair.seed(12)
    arch_loss = search.method.arch_loss(valid)
    (alpha_grad,) = torch.autograd.grad(arch_loss, search.alpha)
    pair.seed(12)
    pair.arch_mode()
    ref_arch_loss = F.cross_entropy(net(valid[0])[1], valid[1])
    (ref_alpha_grad,) = torch.autograd.grad(ref_arch_loss, net.arch_parameters)
    close(arch_loss, ref_arch_loss, "architecture loss")
    close(alpha_grad, ref_alpha_grad, "alpha gradient")
    assert alpha_grad.abs().min() > 0  # GDAS too: every alpha of an edge gets a gradient (the bare weights)


@pytest.mark.parametrize("algo", METHODS)
def test_whole_search_steps_equal_the_reference(digits, algo):
    pair = Pair(digits, algo)
    pair.ref.set_tau(None)
    for epoch in range(2):
        if algo == "gdas":
            pair.ref.set_tau(10 - 9.9 * epoch / (RECIPE.epochs - 1))
        train, valid = batch(10 + epoch), batch(20 + epoch)
        pair.seed(30 + epoch)
        autohas_search_step(pair, epoch, train, valid)
        pair.seed(30 + epoch)
        reference_search_step(pair, epoch, train, valid)
        assert pair.search.lr == pytest.approx(pair.w_optimizer.param_groups[0]["lr"])
        pair.compare_state(f"after step {epoch + 1}")
        if algo not in ("rsps", "enas"):
            assert arch_of(pair.search.alpha.argmax(dim=-1).tolist()) == pair.ref.genotype.tostr()


def test_derived_architecture_is_alphas_argmax_genotype(digits):
    for algo in ("darts-v1", "gdas"):
        pair = Pair(digits, algo, randomise_alpha=True)
        pair.search.derive()
        assert arch_of(pair.search.derived) == pair.ref.genotype.tostr()


def reference_candidates(pair: Pair, count: int) -> list[str]:
    """`get_best_arch`'s candidate list."""
    with torch.no_grad():
        if pair.ref_algo == "enas":
            return [pair.ref.controller()[2].tostr() for _ in range(count)]
        return [arch.tostr() for arch in pair.ref.return_topK(count, pair.ref_algo == "random")]


@pytest.mark.parametrize("algo", ["setn", "rsps", "enas"])
def test_candidate_sets_and_the_pick_equal_the_reference(digits, algo):
    pair = Pair(digits, algo, randomise_alpha=True)
    if algo == "setn":
        load_into_reference(pair.search.supernet, pair.search.alpha, pair.ref)
    pair.seed(3)
    mine = [arch_of(c) for c in pair.search.method.candidates(100)]
    pair.seed(3)
    theirs = reference_candidates(pair, 100)
    assert mine == theirs and len(set(mine)) == (100 if algo != "enas" else len(set(mine)))
    if algo == "setn":  # the 100 most probable, best first
        log_probs = F.log_softmax(pair.search.alpha.detach(), dim=-1)
        from autohas.spaces import get_space

        space = get_space("nats-tss")
        from autohas.spaces.nats_tss import OPERATIONS

        scores = [float(sum(log_probs[e, OPERATIONS.index(op)] for e, op in enumerate(space.decode(a)))) for a in mine]
        assert scores == sorted(scores, reverse=True)

    # the pick: each candidate on the next validation batch, the first best kept
    batches = [batch(100 + i, 16) for i in range(100)]
    pair.search.controller_batches = lambda: iter(batches)
    pair.seed(4)
    picked = arch_of(pair.search.derive())
    pair.seed(4)
    pair.ref.eval()
    candidates = reference_candidates(pair, 100)
    accuracies = []
    from xautodl.models.cell_searchs.genotypes import Structure

    with torch.no_grad():
        for arch, (x, y) in zip(candidates, batches):
            pair.ref.set_cal_mode("dynamic", Structure.str2structure(arch))
            accuracies.append(float((pair.ref(x)[1].argmax(dim=1) == y).double().mean()))
    assert picked == candidates[int(np.argmax(accuracies))]


def reference_train_controller(pair: Pair, batches, prev_baseline, steps: int, aggregate: int):
    """search-cell.py's `train_controller` (its 50 steps x 20 samples given as `steps`, `aggregate`)."""
    net, optimizer = pair.ref, pair.a_optimizer
    net.eval()
    net.controller.train()
    net.controller.zero_grad()
    baselines = []
    for step in range(steps * aggregate):
        x, y = next(batches)
        log_prob, entropy, arch = net.controller()
        with torch.no_grad():
            net.set_cal_mode("dynamic", arch)
            accuracy = (net(x)[1].argmax(dim=1) == y).double().mean().view(-1)
        reward = accuracy + 0.0001 * entropy
        baseline = accuracy if prev_baseline is None else prev_baseline - (1 - 0.99) * (prev_baseline - reward)
        baselines.append(baseline.item())
        (-1 * log_prob * (reward - baseline) / aggregate).backward(retain_graph=True)
        if (step + 1) % aggregate == 0:
            torch.nn.utils.clip_grad_norm_(net.controller.parameters(), 5.0)
            optimizer.step()
            net.controller.zero_grad()
    return float(np.mean(baselines))


def test_enas_controller_phase_equals_the_reference(digits):
    pair = Pair(digits, "enas")
    method, baseline = pair.search.method, None
    for epoch in range(2):  # the first epoch's baseline is each sample's accuracy; then the previous mean
        batches = [batch(200 + 10 * epoch + i, 16) for i in range(4)]
        endless = lambda: (b for _ in range(100) for b in batches)  # noqa: E731
        pair.seed(40 + epoch)
        method.train_controller(endless())
        pair.seed(40 + epoch)
        baseline = reference_train_controller(pair, endless(), baseline, ENAS.controller_steps, ENAS.aggregate)
        assert method.baseline == pytest.approx(baseline, rel=1e-9)
        for (name, mine), theirs in zip(method.controller.state_dict().items(), pair.ref.controller.state_dict().values()):
            close(mine, theirs, f"controller {name} after epoch {epoch + 1}")
    assert isinstance(pair.search.method.controller.w_lstm, torch.nn.LSTM) and pair.search.method.controller.w_lstm.num_layers == 2


def test_search_learning_rate_steps_per_epoch_as_the_reference_scheduler(digits):
    recipe = dataclasses.replace(RECIPE, steps_per_epoch=3, epochs=5)
    pair = Pair(digits, "darts-v1", recipe=recipe)
    search, seen, expected = pair.search, [], []
    step = search.method.step
    search.method.step = lambda train, valid: (seen.append(search.w_optimizer.param_groups[0]["lr"]), 0.0)[1]
    for epoch in range(recipe.epochs):
        search.search_epoch()
        pair.scheduler.update(epoch, 0.0)
        for i in range(search.steps_per_epoch):
            pair.scheduler.update(None, 1.0 * i / search.steps_per_epoch)
            expected.append(pair.w_optimizer.param_groups[0]["lr"])
    search.method.step = step
    assert seen == pytest.approx(expected, rel=1e-12)
    assert len(set(seen)) == recipe.epochs  # constant within an epoch


def test_h0_training_learning_rate_equals_the_reference_scheduler():
    from xautodl.config_utils import dict2config
    from xautodl.procedures.optimizers import get_optim_scheduler

    from autohas.trainables.train import recipe_for

    recipe = recipe_for("cifar10", 12)
    config = dict2config(  # configs/nas-benchmark/hyper-opts/12E.config (H0)
        dict(scheduler="cos", eta_min=0.0, epochs=12, warmup=0, optim="SGD", LR=0.1, decay=0.0005, momentum=0.9,
             nesterov=True, criterion="Softmax"), None)
    optimizer, scheduler, _ = get_optim_scheduler([torch.nn.Parameter(torch.zeros(1))], config)
    steps = 7
    for epoch in range(12):
        scheduler.update(epoch, 0.0)
        for i in range(steps):
            scheduler.update(None, 1.0 * i / steps)  # as the benchmark's training procedure calls it
            assert recipe.lr_at(epoch, i, steps) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
