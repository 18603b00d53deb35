"""Weight-sharing search of nats-sss widths: channel-wise interpolation, prefix masks, the three
methods, warm-up, derivation and re-training (CPU, digits, few batches)."""
from __future__ import annotations

import dataclasses
import math
import weakref

import pytest
import torch
import torch.nn.functional as F

from autohas.models import build_network, count_params
from autohas.models.size_supernet import SssSupernet, channel_interpolate, prefix_masks
from autohas.spaces import get_space
from autohas.spaces.nats_sss import CHANNELS
from autohas.trainables.weight_sharing import SIZE_METHODS
from autohas.trainables.weight_sharing.search import SearchRecipe, SearchSetup, SupernetSearch, check_method, method_settings, search_results
from autohas.trainables.weight_sharing.methods.draws import gumbel_softmax
from autohas.trainables.weight_sharing.methods.size import sample_width_pairs

TINY = SearchRecipe(epochs=2, steps_per_epoch=2, eval_batches=1, candidates=4, batch_size=16, eval_batch_size=64)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from autohas.data import load_splits

    return load_splits("digits", cache_dir=str(tmp_path_factory.mktemp("cache")))


def make(digits, algo, recipe=TINY, seed=0, select=None, **options):
    """A size search; `options`: the method's own settings (warmup_ratio, flops_target, ...)."""
    torch.set_num_threads(1)
    settings = method_settings(algo, **options)
    return SupernetSearch(
        SearchSetup("nats-sss", "digits", None, algo, seed, select=select, recipe=recipe, settings=settings), splits=digits
    )


def _interpolated_by_definition(a: torch.Tensor, c_out: int) -> torch.Tensor:
    """B[i] = mean(A[s:e]) with s = floor(i*C/C'), e = ceil((i+1)*C/C') (TAS Sec. 3.3), channel by channel."""
    c = a.shape[1]
    out = []
    for i in range(c_out):
        s, e = math.floor(i * c / c_out), math.ceil((i + 1) * c / c_out)
        out.append(a[:, s:e].mean(dim=1))
    return torch.stack(out, dim=1)


def test_channel_interpolation_maps_c_channels_to_c_prime_as_specified():
    three = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    assert channel_interpolate(three, 2).flatten().tolist() == [1.5, 2.5]  # channels {0,1} and {1,2}
    two = torch.tensor([4.0, 8.0]).view(1, 2, 1, 1)
    assert channel_interpolate(two, 4).flatten().tolist() == [4.0, 4.0, 8.0, 8.0]  # widening repeats
    assert torch.equal(channel_interpolate(three, 3), three)
    a = torch.arange(2 * 40 * 3 * 2, dtype=torch.float64).view(2, 40, 3, 2) ** 1.5  # distinct values everywhere
    for c_out in (8, 16, 24, 56, 64):
        got = channel_interpolate(a, c_out)
        assert got.shape == (2, c_out, 3, 2)
        assert torch.allclose(got, _interpolated_by_definition(a, c_out))


def test_masks_select_prefixes():
    masks = prefix_masks(CHANNELS, 64)
    assert masks.shape == (8, 64)
    for row, width in zip(masks, CHANNELS):
        assert row[:width].eq(1).all() and row[width:].eq(0).all()


def _features(net: SssSupernet, x: torch.Tensor, **arch) -> list[tuple[int, torch.Tensor]]:
    """(module, feature map) of every feature map the supernet shapes to a width, in order."""
    seen = []
    original = net._shape_width

    def capture(feature, module, *args):
        seen.append((module, original(feature, module, *args)))
        return seen[-1][1]

    net._shape_width = capture
    try:
        net(x, **arch)
    finally:
        del net._shape_width
    return seen


def test_hard_widths_zero_every_channel_past_the_prefix_and_one_hot_mixtures_equal_them():
    torch.manual_seed(0)
    net = SssSupernet(10)
    x = torch.randn(6, 3, 16, 16)
    indices = [0, 3, 7, 2, 5]
    hard = _features(net, x, indices=indices)
    # the outputs of the stem (layer 0's width) and of the five layers, as the reference shapes them
    assert [module for module, _ in hard] == [0, 1, 2, 3, 4, 5] and net.module_layers == (0, 0, 1, 2, 3, 4)
    for module, feature in hard:
        width = CHANNELS[indices[net.module_layers[module]]]
        assert feature[:, width:].eq(0).all() and feature[:, :width].abs().max() > 0
    # per module, the stem its own width
    for (module, feature), index in zip(_features(net, x, indices=[1, *indices]), [1, *indices]):
        assert feature[:, CHANNELS[index]:].eq(0).all() and feature[:, :CHANNELS[index]].abs().max() > 0
    one_hot = F.one_hot(torch.tensor(indices), 8).float()
    with torch.no_grad():
        assert torch.allclose(net(x, indices=indices), net(x, weights=one_hot), atol=1e-6)
        # straight-through: scaled by the (unit) weight of the chosen width
        assert torch.allclose(net(x, indices=indices), net(x, weights=one_hot, indices=indices), atol=1e-6)


def test_the_widest_supernet_is_exactly_the_widest_network():
    """Shared weights mean something at full width: the real 64:64:64:64:64 network given the
    supernet's weights computes what the supernet computes (BN on batch statistics; the stem's
    conv bias, which the reference's affine=False gives it, is cancelled by its BN). Narrower
    widths are not the real networks: as the reference, the supernet masks only each module's
    output, the feature maps inside a cell or block are all 64 channels wide."""
    torch.manual_seed(1)
    supernet = SssSupernet(10).train()
    network = build_network("nats-sss", "64:64:64:64:64", 10).train()
    shared = supernet.state_dict()
    own = network.state_dict()  # the network's BN scales and shifts stay at their identity start
    network.load_state_dict({name: shared.get(name, value) for name, value in own.items()})
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(supernet(x, indices=[7] * 5), network(x), atol=1e-4)


def test_tas_pairs_are_two_distinct_widths_whose_weights_train_only_their_logits():
    alpha = torch.randn(5, 8, requires_grad=True)
    pairs = sample_width_pairs(alpha, tau=1.0, generator=torch.Generator().manual_seed(0))
    assert len(pairs) == 5
    loss = 0
    for (i, j), w in pairs:
        assert i != j and torch.isclose(w.sum(), torch.tensor(1.0))
        loss = loss + w[0] * 3.0 + w[1]
    loss.backward()
    for layer, ((i, j), _) in enumerate(pairs):
        grad = alpha.grad[layer]
        assert grad[i] != 0 and torch.isclose(grad[i], -grad[j])  # the normaliser cancels in a pair
        assert grad[[k for k in range(8) if k not in (i, j)]].abs().max() < 1e-6  # zero up to rounding


def test_tas_mixes_two_interpolated_prefixes_padded_to_the_full_width():
    torch.manual_seed(2)
    net = SssSupernet(10)
    x = torch.randn(4, 3, 16, 16)
    weights = torch.tensor([0.25, 0.75])
    pairs = [((1, 3), weights)] * 5  # widths 16 and 32 in every layer
    stem = net.stem(x)
    ((_, mixed), *_) = _features(net, x, pairs=pairs)
    expected = 0.25 * channel_interpolate(stem[:, :16], 32) + 0.75 * stem[:, :32]
    assert torch.allclose(mixed[:, :32], expected, atol=1e-6) and mixed[:, 32:].eq(0).all()


def test_gumbel_softmax_rows_are_distributions_that_sharpen_as_tau_falls():
    alpha = torch.tensor([[2.0, 0.0, -1.0, 0.5, 0.0, 0.0, 0.0, 0.0]] * 5)
    hot = gumbel_softmax(alpha, 10.0, torch.Generator().manual_seed(0))
    cold = gumbel_softmax(alpha, 0.1, torch.Generator().manual_seed(0))
    assert torch.allclose(hot.sum(-1), torch.ones(5)) and torch.allclose(cold.sum(-1), torch.ones(5))
    assert (cold.max(-1).values > hot.max(-1).values).all()


@pytest.mark.parametrize("algo", SIZE_METHODS)
def test_each_method_learns_alpha_and_derives_a_valid_sss_string(digits, algo):
    search = make(digits, algo)
    before = search.alpha.detach().clone()
    search.search_epoch()
    search.search_epoch()
    assert not torch.equal(before, search.alpha.detach())
    arch = search.supernet.arch(search.derive())
    assert get_space("nats-sss").decode(arch)  # an official string: 5 widths from 8..64
    assert search.derived == search.alpha.detach().argmax(dim=-1).tolist()  # argmax width per layer


def test_mask_sample_is_reinforce_with_a_moving_baseline(digits):
    search = make(digits, "mask-sample")
    search.search_epoch()
    baseline = search.method.baseline.value  # a moving average of top-1 accuracies in percent
    assert baseline is not None and 0.0 <= baseline <= 100.0
    assert search.a_optimizer.param_groups[0]["weight_decay"] == 0.0  # mask_rl's arch weight decay
    captured = {}
    step = search.method._alpha_step
    search.method._alpha_step = lambda g: (captured.setdefault("g", g.clone()), step(g))
    search.search_epoch()
    g = captured["g"]
    # the gradient of -(advantage) * sum_l log p(width_l): each layer's row sums to zero
    assert torch.allclose(g.sum(dim=-1), torch.zeros(5), atol=1e-6 * float(g.abs().max())) and g.abs().sum() > 0


def test_warm_up_trains_the_widest_network_or_random_widths_and_leaves_alpha_alone(digits, monkeypatch):
    """The reference's warm-up (r of T epochs): per module and forward the widest width with
    probability 1 - e / (T r), else a random one; alpha frozen while r > e / T."""
    search = make(digits, "tas", recipe=dataclasses.replace(TINY, epochs=4), warmup_ratio=0.5)
    seen = []
    forward = search.supernet.forward
    monkeypatch.setattr(search.supernet, "forward", lambda x, **arch: (seen.append(arch), forward(x, **arch))[1])
    initial = search.alpha.detach().clone()
    search.search_epoch()
    # epoch 0: the widest network only, on the training and the validation batches
    assert len(seen) == 2 * TINY.steps_per_epoch and all(a == {"indices": [7] * 6} for a in seen)
    seen.clear()
    search.search_epoch()  # epoch 1: widest with probability 0.5
    assert search.method.warming and search.method.widest_probability == 0.5
    assert torch.equal(initial, search.alpha.detach())  # 2 of 4 epochs warm: alpha untouched
    assert all(set(a) == {"indices"} for a in seen) and any(w != 7 for a in seen for w in a["indices"])
    seen.clear()
    search.search_epoch()
    assert not search.method.warming and not torch.equal(initial, search.alpha.detach())
    assert any("pairs" in a for a in seen)


@pytest.mark.parametrize("algo", SIZE_METHODS)
def test_a_resumed_size_search_equals_an_uninterrupted_one(digits, algo):
    """Through the warm-up (its random widths, mask-sample's baseline) into the search."""
    recipe, warm = dataclasses.replace(TINY, epochs=3), {"warmup_ratio": 0.5}
    straight = make(digits, algo, recipe=recipe, **warm)
    for _ in range(3):
        straight.search_epoch()
    first = make(digits, algo, recipe=recipe, **warm)
    first.search_epoch()
    first.search_epoch()
    resumed = make(digits, algo, recipe=recipe, **warm)
    resumed.load(first.state())
    resumed.search_epoch()
    assert torch.equal(straight.alpha, resumed.alpha)
    for (name, a), (_, b) in zip(straight.supernet.state_dict().items(), resumed.supernet.state_dict().items()):
        assert torch.equal(a, b), name
    assert straight.method.state_dict() == resumed.method.state_dict()


def test_space_checks():
    check_method("tas", None, "nats-sss")
    check_method("mask-gumbel", "ostr", "nats-sss")  # the mask mixture gives the gradient criteria a meaning
    with pytest.raises(ValueError, match="tas searches nats-sss, not nats-tss"):
        check_method("tas", None, "nats-tss")
    with pytest.raises(ValueError, match="gdas searches nats-tss, not nats-sss"):
        check_method("gdas", None, "nats-sss")


def test_without_a_benchmark_the_derived_widths_are_retrained(digits, monkeypatch):
    import autohas.trainables.weight_sharing.search as search_module
    from autohas.trainables import train

    monkeypatch.setattr(search_module, "cached_splits", lambda *a: digits)
    monkeypatch.setattr(train, "cached_splits", lambda *a: digits)
    made = []  # the searches built, weakly: re-training must not keep one (and its device memory) alive

    class TrackedSearch(search_module.SupernetSearch):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(weakref.ref(self))

    monkeypatch.setattr(search_module, "SupernetSearch", TrackedSearch)
    recipe = dataclasses.replace(TINY, retrain_epochs=1)
    setup = SearchSetup("nats-sss", "digits", None, "mask-gumbel", 0, recipe=recipe)
    results, states, alive = [], [], []
    for result, state in search_results(setup, "t1"):
        results.append(result)
        states.append(state)
        alive.append(sum(ref() is not None for ref in made))
    assert [r["epoch"] for r in results] == [1, 2, 3] and alive == [1, 1, 0] and len(made) == 1
    # the re-training checkpoint still carries the finished search, so a resume can rebuild it
    searched, retraining = states[1], states[2]
    assert "retrain" in retraining and retraining["epoch"] == searched["epoch"] == 2
    assert torch.equal(retraining["alpha"], searched["alpha"])
    assert all(torch.equal(retraining["supernet"][k], v) for k, v in searched["supernet"].items())
    space = get_space("nats-sss")
    for r in results:
        assert space.arch_to_index(r["arch"]) == r["arch_index"] and r["space"] == "nats-sss"
        assert r["params"] > 0 and r["flops"] > 0
    assert results[-1]["arch"] == results[-2]["arch"] and results[-1]["hparams"] == {"retrain_epochs": 1}
    assert results[-1]["params"] == count_params(build_network("nats-sss", results[-1]["arch"], 10))
    assert SearchSetup("nats-sss", "digits", None, "tas", 0).retrain_epochs == 12
    assert SearchSetup("nats-sss", "cifar10", None, "tas", 0, benchmark="b.csv").retrain_epochs == 0


def test_with_a_benchmark_the_derived_widths_are_looked_up_not_retrained(digits, official_path, monkeypatch):
    """The official sss records score the derived configuration (here 8:8:8:8:8, whose record the
    sample holds: alpha starts on width 8 everywhere and does not move with a zero learning rate)."""
    import autohas.trainables.weight_sharing.search as search_module
    from autohas.bench import open_benchmark

    monkeypatch.setattr(search_module, "cached_splits", lambda *a: digits)
    recipe = dataclasses.replace(TINY, epochs=1, arch_lr=0.0)
    setup = SearchSetup("nats-sss", "cifar10", None, "mask-gumbel", 0, benchmark=str(official_path), recipe=recipe)
    assert setup.retrain_epochs == 0
    start = SupernetSearch(setup, splits=digits)
    with torch.no_grad():
        start.alpha[:, 0] = 5.0
    (result,) = [r for r, _ in search_results(setup, "t1", state=start.state())]
    assert result["arch"] == "8:8:8:8:8" and result["arch_index"] == 0
    assert result["test_acc"] == open_benchmark(str(official_path), "nats-sss").test_acc("8:8:8:8:8", "cifar10")


def test_width_cost_tables_count_exactly_what_the_real_networks_count():
    import itertools
    import random

    from autohas.models import count_flops
    from autohas.models.size_cost import WidthCost

    cost = WidthCost(10, 16)
    rng = random.Random(0)
    for _ in range(5):
        indices = [rng.randrange(8) for _ in range(5)]
        arch = ":".join(str(CHANNELS[i]) for i in indices)
        assert cost.of(indices) == pytest.approx(count_flops(build_network("nats-sss", arch, 10), (3, 16, 16)), rel=1e-12)
    # the expectation under independent layers, by brute force over a support of two widths per layer
    support = [(0, 5), (2, 7), (1, 3), (4, 6), (7, 0)]
    probs = torch.zeros(5, 8, dtype=torch.float64)
    for layer, (a, b) in enumerate(support):
        probs[layer, a], probs[layer, b] = 0.3, 0.7
    brute = 0.0
    for choice in itertools.product(*support):
        weight = math.prod(float(probs[layer, i]) for layer, i in enumerate(choice))
        arch = ":".join(str(CHANNELS[i]) for i in choice)
        brute += weight * count_flops(build_network("nats-sss", arch, 10), (3, 16, 16))
    assert float(cost.expected(probs)) == pytest.approx(brute, rel=1e-12)
    # the device-side lookup TAS' cost loss decides by is the expectation of a one-hot distribution, to the last bit
    for _ in range(200):
        indices = [rng.randrange(8) for _ in range(5)]
        one_hot = torch.nn.functional.one_hot(torch.tensor(indices), 8).to(torch.float64)
        assert cost.of_tensor(torch.tensor(indices)).item() == float(cost.expected(one_hot))


@pytest.mark.parametrize("target_scale,direction", [(0.3, -1), (3.0, 1), (1.0, 0)])
def test_tas_cost_loss_moves_expected_flops_toward_the_target(target_scale, direction):
    from autohas.models.size_cost import WidthCost
    from autohas.trainables.weight_sharing.methods.cost import cost_loss

    cost = WidthCost(10, 16)
    alpha = torch.randn(5, 8, generator=torch.Generator().manual_seed(3), requires_grad=True)
    current = cost.of(alpha.detach().argmax(-1).tolist())
    loss = cost_loss(cost, alpha, target_scale * current, 0.05)
    before = float(cost.expected(torch.softmax(alpha.detach(), -1)))
    if direction == 0:  # within the tolerance: no cost term
        assert float(loss.detach()) == 0.0
        return
    (grad,) = torch.autograd.grad(loss, alpha)
    after = float(cost.expected(torch.softmax(alpha.detach() - 0.1 * grad, -1)))
    assert (after - before) * direction > 0


def test_tas_with_a_flops_target_derives_smaller_networks(digits):
    unconstrained = make(digits, "tas", recipe=dataclasses.replace(TINY, arch_lr=0.05))
    constrained = make(digits, "tas", recipe=dataclasses.replace(TINY, arch_lr=0.05), flops_target=1.0, cost_weight=20.0)
    for search in (unconstrained, constrained):
        search.search_epoch()
        search.search_epoch()
    cost = constrained.method.cost
    assert cost.expected(constrained.beta().detach()) < cost.expected(unconstrained.beta().detach())
    assert cost.of(constrained.derive()) < cost.of(unconstrained.derive())
