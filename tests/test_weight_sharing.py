"""The weight-sharing search loop on a tiny supernet (CPU, few batches): methods, selection, resume."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autohas.spaces import get_space
from autohas.spaces.nats_tss import OPERATIONS
from autohas.trainables.weight_sharing import METHOD_NAMES, SELECTION_NAMES
from autohas.trainables.weight_sharing.methods.draws import gdas_tau, gumbel_straight_through
from autohas.trainables.weight_sharing.registry import METHODS
from autohas.trainables.weight_sharing.search import SearchRecipe, SearchSetup, SupernetSearch, arch_of, check_method, search_results
from autohas.trainables.weight_sharing.selection import SELECTIONS, operation_strength, removal_saliency

TINY = SearchRecipe(epochs=3, channels=4, cells_per_stage=1, steps_per_epoch=2, eval_batches=1, candidates=4, batch_size=16, eval_batch_size=64)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from autohas.data import load_splits

    return load_splits("digits", cache_dir=str(tmp_path_factory.mktemp("cache")))


def make(digits, algo, select=None, recipe=TINY, seed=0):
    torch.set_num_threads(1)
    return SupernetSearch(SearchSetup(METHODS[algo].space, "digits", None, algo, seed, select=select, recipe=recipe), splits=digits)


def test_registries_match_the_names_the_cli_lists():
    assert tuple(METHODS) == METHOD_NAMES
    assert tuple(SELECTIONS) == SELECTION_NAMES


def test_gumbel_hard_forward_and_straight_through_gradient():
    alpha = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    hard, index = gumbel_straight_through(alpha, tau=1.0, generator=generator)
    assert torch.equal(hard.detach(), F.one_hot(torch.tensor(index), 5).double())  # exactly one-hot forward
    (hard * torch.arange(5.0, dtype=torch.float64)).sum().backward()
    assert alpha.grad is not None and torch.isfinite(alpha.grad).all()
    assert (alpha.grad.abs() > 0).all()  # every logit gets gradient through the relaxed softmax


def test_gdas_arch_step_gradient_reaches_alpha_through_the_sampled_path(digits):
    search = make(digits, "gdas")
    before = search.alpha.detach().clone()
    captured = {}
    step = search.method._alpha_step
    search.method._alpha_step = lambda g: (captured.setdefault("g", g.clone()), step(g))
    search.search_epoch()
    assert torch.isfinite(captured["g"]).all() and captured["g"].abs().sum() > 0
    assert not torch.equal(before, search.alpha.detach())


def test_tau_is_annealed_linearly_from_10_to_0_1_over_the_search(digits):
    assert gdas_tau(0, 100, 10.0, 0.1) == 10.0
    assert gdas_tau(99, 100, 10.0, 0.1) == pytest.approx(0.1)
    assert gdas_tau(33, 100, 10.0, 0.1) == pytest.approx(10.0 - 9.9 * 33 / 99)
    search = make(digits, "gdas", recipe=dataclasses.replace(TINY, epochs=4, steps_per_epoch=1))
    seen = []
    for _ in range(4):
        search.search_epoch()
        seen.append(search.method.tau)
    assert seen == pytest.approx([10.0, 6.7, 3.4, 0.1])


def _first_arch_gradient(search):
    grads = []
    step = search.method._alpha_step
    search.method._alpha_step = lambda g: (grads.append(g.clone()), step(g))
    search.search_epoch()
    return grads[0]


class SmoothMixture(torch.nn.Module):
    """A smooth stand-in for the supernet (tanh units): finite differences must match autograd on it."""

    shape = (6, 5)

    def __init__(self, features: int, classes: int = 10):
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.project = torch.nn.Parameter(torch.randn(features, 8, generator=generator) / features**0.5)
        self.heads = torch.nn.Parameter(torch.randn(6, 5, 8, classes, generator=generator) / 8**0.5)

    def forward(self, x, weights=None, indices=None):
        h = torch.tanh(x.flatten(1) @ self.project)
        outs = torch.tanh(torch.einsum("bf,ekfc->bekc", h, self.heads))
        return torch.einsum("bekc,ek->bc", outs, weights)


def test_second_order_darts_differs_from_first_order(digits):
    recipe = dataclasses.replace(TINY, steps_per_epoch=1)
    first = _first_arch_gradient(make(digits, "darts-v1", recipe=recipe))
    second = _first_arch_gradient(make(digits, "darts-v2", recipe=recipe))
    assert not torch.allclose(first, second)


def test_second_order_gradient_is_the_unrolled_gradient(digits):
    """darts-v2's alpha gradient equals d/d alpha of L_val(w - xi (dL_train/dw + wd w), alpha),
    computed exactly by double backward (on a smooth model, in float64; before any weight step,
    so no momentum buffer yet)."""
    search = make(digits, "darts-v2")
    train, valid = next(iter(search.train)), next(iter(search.arch_batches))
    train, valid = (train[0].double(), train[1]), (valid[0].double(), valid[1])
    search.supernet = SmoothMixture(train[0][0].numel()).double()
    search.alpha = torch.nn.Parameter(torch.randn(6, 5, dtype=torch.float64))
    search.a_optimizer = torch.optim.Adam([search.alpha], lr=3e-4)
    search.lr = 0.1
    search.w_optimizer = torch.optim.SGD(search.supernet.parameters(), lr=search.lr, momentum=0.9, weight_decay=TINY.weight_decay)
    got = {}
    search.method._alpha_step = lambda g: got.setdefault("g", g)
    search.method.arch_step(train, valid)

    net, alpha = search.supernet, search.alpha.detach().clone().requires_grad_()
    names, params = zip(*net.named_parameters())
    loss_train = F.cross_entropy(net(train[0], weights=F.softmax(alpha, -1)), train[1])
    grads = torch.autograd.grad(loss_train, params, create_graph=True)
    unrolled = {n: p - search.lr * (g + TINY.weight_decay * p) for n, p, g in zip(names, params, grads)}
    loss_val = F.cross_entropy(torch.func.functional_call(net, unrolled, (valid[0],), {"weights": F.softmax(alpha, -1)}), valid[1])
    exact = torch.autograd.grad(loss_val, alpha)[0]
    first_order = torch.autograd.grad(
        F.cross_entropy(torch.func.functional_call(net, {n: u.detach() for n, u in unrolled.items()}, (valid[0],),
                                                   {"weights": F.softmax(alpha, -1)}), valid[1]), alpha)[0]
    second_order_term = (exact - first_order).abs().max()
    assert second_order_term > 0.1 * exact.abs().max()  # the unrolled term matters here
    # central finite differences (eps = 0.01 / ||dw||) recover it to well within 1 %
    assert (got["g"] - exact).abs().max() < 0.01 * second_order_term


def test_selection_criteria_on_a_constructed_case():
    # ops (none, skip, conv1x1, conv3x3, avgpool).
    # edge 0: skip has the largest alpha, but the loss hardly depends on it: strength and
    #         saliency both pick the conv the loss is most sensitive to (conv3x3).
    # edge 1: uniform mixture, four ops pull one way and avg-pool the other: removing any of the
    #         four changes the loss most (saliency: the first of them, none), while avg-pool's
    #         output differs most from the mixture's (strength).
    beta = torch.tensor([[0.05, 0.55, 0.25, 0.10, 0.05], [0.2] * 5])
    grad_beta = torch.tensor([[0.0, 0.02, -0.90, 2.40, 0.0], [3.0, 3.0, 3.0, 3.0, -2.0]])
    strength = operation_strength(beta, grad_beta)
    saliency = removal_saliency(beta, grad_beta)
    assert beta.argmax(-1).tolist()[0] == OPERATIONS.index("skip_connect")
    assert strength.argmax(-1).tolist() == [OPERATIONS.index("nor_conv_3x3"), OPERATIONS.index("avg_pool_3x3")]
    assert saliency.argmax(-1).tolist() == [OPERATIONS.index("nor_conv_3x3"), OPERATIONS.index("none")]
    # strength is |dL/d alpha|: the softmax chain rule applied to the same gradient
    alpha = torch.log(beta).requires_grad_()
    (F.softmax(alpha, -1) * grad_beta).sum().backward()
    assert torch.allclose(strength, alpha.grad.abs(), atol=1e-7)


def test_operation_strength_is_the_epoch_mean_of_abs_alpha_gradients(digits):
    search = make(digits, "darts-v1", select="ostr", recipe=dataclasses.replace(TINY, steps_per_epoch=3))
    expected = torch.zeros(search.supernet.shape)
    observe = search.selection.observe

    def spy(x, y):  # |dL_val/d alpha| at the moment of each observation, by plain autograd
        a = search.alpha.detach().clone().requires_grad_()
        F.cross_entropy(search.supernet(x, weights=F.softmax(a, -1)), y).backward()
        expected.add_(a.grad.abs())
        observe(x, y)

    search.selection.observe = spy
    search.search_epoch()
    assert search.selection.batches == 3
    assert torch.allclose(search.selection.scores(), expected / 3, rtol=1e-4, atol=1e-8)
    assert search.derive() == (expected / 3).argmax(-1).tolist()


def test_saliency_is_the_first_order_loss_change_of_removing_an_op(digits):
    search = make(digits, "darts-v1", select="saliency", recipe=dataclasses.replace(TINY, steps_per_epoch=1))
    search.search_epoch()
    x, y = next(iter(search.valid))
    search.selection.start_epoch()
    search.selection.observe(x, y)
    net = search.supernet.double()
    x, beta = x.double(), search.beta().detach().double()

    def loss(weights):
        with torch.no_grad():
            return float(F.cross_entropy(net(x, weights=weights), y))

    t = 1e-4
    for e, k in [(0, 2), (3, 3), (5, 1)]:  # scaling op k of edge e by 1 -+ t: removal to first order
        less, more = beta.clone(), beta.clone()
        less[e, k] *= 1 - t
        more[e, k] *= 1 + t
        slope = (loss(less) - loss(more)) / (2 * t)
        assert float(search.selection.scores()[e, k]) ** 0.5 == pytest.approx(abs(slope), rel=2e-2)


def test_sampled_selection_keeps_the_best_candidate_on_the_validation_batch(digits):
    search = make(digits, "rsps")
    search.search_epoch()
    candidates = [[1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3], [2, 4, 2, 4, 2, 4]]
    search.method.candidates = lambda count: list(candidates)
    state = search.valid_order.get_state()
    chosen = search.derive()
    search.valid_order.set_state(state)
    batches = search.controller_batches()  # each candidate on the next shuffled validation batch
    with torch.no_grad():
        accs = [float((search.supernet(x, indices=c).argmax(1) == y).float().mean()) for c, (x, y) in zip(candidates, batches)]
    assert chosen == candidates[int(np.argmax(accs))]


@pytest.mark.parametrize("algo", METHOD_NAMES)
def test_resume_from_a_checkpoint_continues_the_same_run(digits, algo):
    straight = make(digits, algo)
    straight.search_epoch()
    straight.search_epoch()
    first = make(digits, algo)
    first.search_epoch()
    state = first.state()
    resumed = make(digits, algo)
    resumed.load(state)
    resumed.search_epoch()
    assert torch.equal(straight.alpha, resumed.alpha)
    for (name, a), (_, b) in zip(straight.supernet.state_dict().items(), resumed.supernet.state_dict().items()):
        assert torch.equal(a, b), name
    assert straight.derive() == resumed.derive()
    assert straight.epoch == resumed.epoch == 2


def test_results_report_the_derived_architecture_each_epoch(digits, monkeypatch):
    import autohas.trainables.weight_sharing.search as search_module

    monkeypatch.setattr(search_module, "cached_splits", lambda *a: digits)
    setup = SearchSetup("nats-tss", "digits", None, "darts-v1", 3, select="ostr", recipe=TINY)
    results = [r for r, _ in search_results(setup, "t1")]
    space = get_space("nats-tss")
    assert [r["epoch"] for r in results] == [1, 2, 3]
    for r in results:
        assert r["algo"] == "darts-v1" and r["seed"] == 3 and r["trial_id"] == "t1"
        assert space.arch_to_index(r["arch"]) == r["arch_index"]
        assert 0 <= r["valid_acc"] <= 100 and 0 <= r["test_acc"] <= 100
        assert r["params"] > 0 and r["flops"] > 0
    seconds = [r["trial_sim_seconds"] for r in results]
    assert seconds == sorted(seconds) and seconds[0] > 0


def test_arch_strings_and_method_checks():
    assert arch_of([1, 0, 2, 3, 4, 1]) == "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|skip_connect~2|"
    check_method("gdas", "ostr")
    with pytest.raises(ValueError, match="sampled"):
        check_method("rsps", "alpha")
    with pytest.raises(ValueError, match="unknown"):
        check_method("pc-darts", None)


def test_limited_evaluation_uses_a_fixed_random_subset_not_the_first_stored_images():
    from autohas.data import Split
    from autohas.trainables.weight_sharing.search import _subset

    labels = torch.arange(10).repeat_interleave(100)  # stored sorted by class, as image folders are read
    split = Split(torch.zeros(1000, 3, 4, 4, dtype=torch.uint8), labels)
    first, again = _subset(split, 200), _subset(split, 200)
    assert len(first.labels) == 200 and torch.equal(first.labels, again.labels)
    assert len(set(first.labels.tolist())) == 10
    assert _subset(split, None) is split and _subset(split, 5000) is split


def test_method_options_travel_with_each_methods_trials(digits, tmp_path):
    """`--algo mask-gumbel,tas --flops-target 50`: tas' trials get the target though mask-gumbel comes first."""
    from autohas.runner import RunSpec, search_setups
    from autohas.trainables.weight_sharing.search import trial_setup

    specs = [
        RunSpec(algo=algo, seed=0, space="nats-sss", dataset="digits", benchmark="", experiment_dir=str(tmp_path),
                time_budget=None, num_samples=None, method_options={"flops_target": 50.0})
        for algo in ("mask-gumbel", "tas")
    ]
    setups = search_setups(specs, {"cpu": 1})
    tas = trial_setup({"run": {"algo": "tas", "seed": 3}}, setups)
    gumbel = trial_setup({"run": {"algo": "mask-gumbel", "seed": 4}}, setups)
    assert (tas.algo, tas.seed, tas.method_settings.flops_target) == ("tas", 3, 50.0)
    assert (gumbel.algo, gumbel.seed) == ("mask-gumbel", 4) and not hasattr(gumbel.method_settings, "flops_target")
    search = SupernetSearch(dataclasses.replace(tas, recipe=TINY), splits=digits)
    assert search.method.cost is not None  # tas builds its cost loss
