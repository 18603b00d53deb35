"""SANAS / LeaSE (learning from saliency explanations) and AutoHAS on a tiny supernet (CPU, few batches).

Derivative checks run in float64 with every ReLU swapped for a Softplus (`smooth`): the
unrolled objective contains input-gradients of the network (the saliency step) and weight
gradients (the virtual steps), which for a ReLU network are piecewise constant in the
parameters, so the objective itself jumps when a pre-activation crosses zero and finite
differences on the real supernet are meaningless (measured: they grow like 1/eps).
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import autohas.trainables.weight_sharing.methods.explained as explained
from autohas.spaces import get_space
from autohas.spaces.has import DEFAULT_WEIGHT_DECAY, MULTIPLIERS, REFERENCE_BATCH
from autohas.trainables.train import Recipe
from autohas.trainables.weight_sharing.methods.autohas import compress, expected
from autohas.trainables.weight_sharing.methods.explained import (
    SALIENCY_IMAGES, input_bound, reweight, saliency_perturbation, soft_cross_entropy,
)
from autohas.trainables.weight_sharing.methods.base import RESNET_CELL_INDEX, clip_gradients
from autohas.trainables.weight_sharing.search import SearchSetup, SupernetSearch, arch_of, cosine_between, search_results

from tests.test_weight_sharing import TINY, digits, make  # noqa: F401 (digits is a fixture)


def first_batches(search):
    return next(iter(search.train)), next(iter(search.arch_batches))


def smooth(module: nn.Module) -> nn.Module:
    """Replace every ReLU by a Softplus, in place (a smooth network for derivative checks)."""
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.Softplus())
        else:
            smooth(child)
    return module


def to_double(search, batches):
    """The search (supernet, student, alpha, bound) and the batches in float64."""
    method = search.method
    search.supernet.double()
    if hasattr(method, "student"):
        method.student.double()
        method.bound = method.bound.double()
    search.alpha.data = search.alpha.data.double()
    return [(x.double(), y) for x, y in batches]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ------------------------------------------------------------------------------------------------
# SANAS / LeaSE: the saliency perturbation


def test_input_bound_soft_cross_entropy_and_reweight():
    std = (0.2, 0.25, 0.5)
    bound = input_bound(0.03, std, torch.device("cpu"))
    assert bound.shape == (1, 3, 1, 1)
    assert bound.flatten().tolist() == pytest.approx([0.15, 0.12, 0.06])
    logits = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 9, 2, 2])
    # with one-hot targets: the summed (not mean) cross-entropy
    assert float(soft_cross_entropy(logits, F.one_hot(labels, 10).float())) == pytest.approx(
        float(F.cross_entropy(logits, labels, reduction="sum")), rel=1e-6)
    # against its own prediction the soft cross-entropy is the entropy, its minimum over the logits
    p = F.softmax(logits, 1)
    assert float(soft_cross_entropy(logits, p)) == pytest.approx(float(-(p * p.log()).sum()), rel=1e-6)
    assert float(soft_cross_entropy(logits + 0.3 * torch.randn(5, 10), p)) > float(soft_cross_entropy(logits, p))
    x = torch.rand(2, 3, 4, 4)
    delta = (torch.rand(2, 3, 4, 4) * 2 - 1) * bound
    assert torch.allclose(reweight(delta, x, bound), delta / bound * x)
    assert torch.allclose(reweight(bound.expand(2, 3, 4, 4), x, bound), x)  # full saliency keeps the image


def test_saliency_perturbation_stays_in_the_box_and_depends_on_the_weights(digits):
    search = make(digits, "sanas-darts")
    (x, _), _ = first_batches(search)
    bound = input_bound(0.03, search.spec.std, search.device)
    beta = search.beta().detach()
    forward = lambda z: search.supernet(z, weights=beta)  # noqa: E731
    state = search.generator.get_state()
    delta = saliency_perturbation(forward, x, bound, search.generator).detach()
    assert delta.shape == x.shape
    limit = bound.expand_as(delta)
    assert (delta.abs() <= limit).all()  # |delta| <= bound, per channel, for every pixel
    assert (delta != 0).any()
    assert (delta.abs() == limit).any()  # the ascent step moves the largest pixels the full bound
    # per image, the largest pixel moves the full bound (up to the tiny random start)
    per_image = (delta.abs() / bound).amax(dim=(1, 2, 3))
    assert (per_image >= 1 - 2 * explained.START_SCALE).all()
    # the box is per channel (the channels' std differ), not the largest channel's bound
    for c in range(3):
        assert float(delta[:, c].abs().max()) <= float(bound[0, c, 0, 0])

    search.generator.set_state(state)
    again = saliency_perturbation(forward, x, bound, search.generator).detach()
    assert torch.equal(delta, again)  # deterministic given the generator state

    with torch.no_grad():
        for p in search.supernet.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    search.generator.set_state(state)
    moved = saliency_perturbation(forward, x, bound, search.generator).detach()
    assert (moved.abs() <= limit).all()
    assert not torch.allclose(moved, delta, atol=1e-3 * float(bound.min()))


def test_saliency_perturbation_is_differentiable_in_alpha_with_create_graph(digits):
    search = make(digits, "sanas-darts")
    (x, _), _ = first_batches(search)
    bound = input_bound(0.03, search.spec.std, search.device)
    forward = lambda z: search.supernet(z, weights=search.beta())  # noqa: E731
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    delta = saliency_perturbation(forward, x, bound, search.generator, create_graph=True)
    grad = torch.autograd.grad((delta * weights).sum(), search.alpha)[0]
    assert torch.isfinite(grad).all() and grad.abs().max() > 0
    # without create_graph the perturbation is a constant of alpha
    plain = saliency_perturbation(forward, x, bound, search.generator, create_graph=False)
    assert torch.autograd.grad((plain * weights).sum(), search.alpha, allow_unused=True)[0] is None


# ------------------------------------------------------------------------------------------------
# SANAS / LeaSE: the architecture gradient


def test_sanas_architecture_gradient_differs_from_first_order_darts(digits):
    sanas, darts = make(digits, "sanas-darts"), make(digits, "darts-v1")
    for (name, a), (_, b) in zip(sanas.supernet.state_dict().items(), darts.supernet.state_dict().items()):
        assert torch.equal(a, b), name  # same seed: identical weights ...
    assert torch.equal(sanas.alpha, darts.alpha)  # ... and alpha
    train, (xv, yv) = first_batches(sanas)
    assert torch.equal(first_batches(darts)[1][0], xv)
    unrolled = sanas.method.unrolled_gradient(train, (xv, yv))
    first_order = torch.autograd.grad(F.cross_entropy(darts.supernet(xv, weights=darts.beta()), yv), darts.alpha)[0]
    assert torch.isfinite(unrolled).all() and unrolled.shape == first_order.shape
    assert relative(unrolled, first_order) > 0.01
    # not merely a rescaling (SANAS weighs the explainer's loss by 2): the direction differs too
    c = float((unrolled * first_order).sum() / (first_order * first_order).sum())
    assert relative(unrolled, c * first_order) > 0.01


@pytest.mark.parametrize("algo, weights", [("sanas-darts", (1.0, 2.0)), ("lease", (1.0, 1.0))])
def test_unrolled_objective_weighs_the_student_and_the_explainer_losses(digits, algo, weights):
    """s L_val(student') + e L_val(W1'): SANAS s = 1, e = gamma = 2; LeaSE s = e = 1; and the
    explainer's term is the validation loss after one virtual SGD step (with weight decay) of W1."""
    search = make(digits, algo)
    method = search.method
    train, valid = to_double(search, first_batches(search))
    start = search.generator.get_state()

    def objective(s, e):
        method.student_weight, method.explainer_weight = s, e
        search.generator.set_state(start)
        return float(method.unrolled_objective(train, valid).detach())

    assert (type(method).student_weight, type(method).explainer_weight) == weights
    full = objective(*weights)
    student, explainer = objective(1.0, 0.0), objective(0.0, 1.0)
    assert full == pytest.approx(weights[0] * student + weights[1] * explainer, rel=1e-10)
    assert student != pytest.approx(explainer, rel=1e-3)

    net, beta = search.supernet, search.beta()
    names, params = zip(*net.named_parameters())
    grads = torch.autograd.grad(F.cross_entropy(net(train[0], weights=beta), train[1]), params)
    decay = search.recipe.weight_decay
    stepped = {n: p - search.lr * (g + decay * p) for n, p, g in zip(names, params, grads)}
    by_hand = F.cross_entropy(torch.func.functional_call(net, stepped, (valid[0],), {"weights": beta}), valid[1])
    assert explainer == pytest.approx(float(by_hand.detach()), rel=1e-10)


def _fd_setup(digits, algo, seed=0):
    search = make(digits, algo, seed=seed)
    smooth(search.supernet)
    smooth(search.method.student)
    train, valid = to_double(search, first_batches(search))
    start = search.generator.get_state()
    alpha0 = search.alpha.data.clone()
    direction = torch.randn(alpha0.shape, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64)

    def objective(alpha):
        search.alpha.data = alpha
        search.generator.set_state(start)  # the same random start of the saliency ascent
        value = float(search.method.unrolled_objective(train, valid).detach())
        search.alpha.data = alpha0
        return value

    def gradient():
        search.generator.set_state(start)
        return search.method.unrolled_gradient(train, valid)

    return search, objective, gradient, alpha0, direction


@pytest.mark.parametrize("algo", ["sanas-darts", "lease"])
def test_unrolled_gradient_is_the_derivative_of_the_unrolled_objective(digits, algo):
    search, objective, gradient, alpha0, v = _fd_setup(digits, algo)
    eps = 1e-4
    predicted = float((gradient() * v).sum())
    finite = (objective(alpha0 + eps * v) - objective(alpha0 - eps * v)) / (2 * eps)
    assert predicted == pytest.approx(finite, rel=1e-3)


def test_lease_audience_ignores_the_architecture_while_the_sanas_student_uses_it(digits):
    for algo, depends in (("lease", False), ("sanas-darts", True)):
        search = make(digits, algo)
        method = search.method
        (x, _), _ = first_batches(search)
        outputs = []
        for seed in (1, 2):
            with torch.no_grad():
                search.alpha.copy_(torch.randn(search.alpha.shape, generator=torch.Generator().manual_seed(seed)))
            kwargs = method.student_kwargs(method.arch_kwargs(True))
            out = method.student(x, **kwargs)
            reaches = torch.autograd.grad(out.sum(), search.alpha, allow_unused=True)[0]
            assert (reaches is not None) == depends, algo
            outputs.append(out.detach())
        if depends:
            assert not torch.allclose(outputs[0], outputs[1])
        else:
            assert method.student_kwargs(method.arch_kwargs(True)) == {}
            assert torch.equal(outputs[0], outputs[1])


# ------------------------------------------------------------------------------------------------
# SANAS / LeaSE: cadence and saliency maps


def test_sanas_cadence_student_every_three_steps_architecture_every_five(digits):
    search = make(digits, "sanas-darts", recipe=dataclasses.replace(TINY, epochs=1, steps_per_epoch=10))
    method = search.method
    calls = {"student": [], "alpha": [], "unrolled": []}
    for name, attr in (("student", "student_step"), ("alpha", "_alpha_step"), ("unrolled", "unrolled_gradient")):
        original = getattr(method, attr)

        def spy(*args, _name=name, _original=original):
            calls[_name].append(method.count - 1)  # count is advanced before the step's updates
            return _original(*args)

        setattr(method, attr, spy)
    alphas, weights = [search.alpha.detach().clone()], [search.supernet.classifier.weight.detach().clone()]
    step = method.step

    def record(*args):
        loss = step(*args)
        alphas.append(search.alpha.detach().clone())
        weights.append(search.supernet.classifier.weight.detach().clone())
        return loss

    method.step = record
    search.search_epoch()
    assert method.count == 10
    assert calls["student"] == [0, 3, 6, 9]
    assert calls["alpha"] == calls["unrolled"] == [0, 5]
    changed = [i for i in range(10) if not torch.equal(alphas[i], alphas[i + 1])]
    assert changed == [0, 5]  # alpha moves only on its own steps
    assert all(not torch.equal(weights[i], weights[i + 1]) for i in range(10))  # W1 every step


def test_end_epoch_keeps_the_saliency_maps_of_fixed_validation_images(digits):
    search = make(digits, "lease", recipe=dataclasses.replace(TINY, steps_per_epoch=1))
    size = search.spec.image_size
    maps = []
    for epoch in (1, 2):
        search.search_epoch()
        m = search.method.maps
        assert m["epoch"] == epoch
        assert m["images"].dtype == torch.uint8 and m["images"].shape == (SALIENCY_IMAGES, 3, size, size)
        assert m["saliency"].dtype == torch.float16 and m["saliency"].shape == (SALIENCY_IMAGES, size, size)
        s = m["saliency"].float()
        assert (s >= 0).all() and (s <= 1).all()
        assert (s.amax(dim=(1, 2)) >= 0.99).all()  # each image's most salient pixel reaches the bound
        assert (s < 0.5).any()  # and it is a map, not a constant
        maps.append(copy.deepcopy(m))
    assert torch.equal(maps[0]["images"], maps[1]["images"])
    assert torch.equal(maps[0]["images"], search.saliency_images(SALIENCY_IMAGES).cpu())
    assert not torch.equal(maps[0]["saliency"], maps[1]["saliency"])  # the weights moved
    # the maps, the cadence counter and the student travel with the checkpoint
    resumed = make(digits, "lease", recipe=dataclasses.replace(TINY, steps_per_epoch=1))
    resumed.load(search.state())
    assert resumed.method.count == search.method.count == 2
    assert resumed.method.maps["epoch"] == 2 and torch.equal(resumed.method.maps["saliency"], maps[1]["saliency"])
    for (name, a), (_, b) in zip(resumed.method.student.state_dict().items(), search.method.student.state_dict().items()):
        assert torch.equal(a, b), name


# ------------------------------------------------------------------------------------------------
# AutoHAS


def test_compress_keeps_short_schedules_and_block_means_long_ones():
    short = [0.3, 0.1, 0.2]
    assert compress(short, 3) == short and compress(short, 10) == short
    long = [float(v) for v in np.linspace(1.0, 0.0, 12) ** 2]
    out = compress(long, 4)
    assert len(out) == 4
    assert out == pytest.approx([np.mean(long[i:i + 3]) for i in range(0, 12, 3)])
    assert np.mean(out) == pytest.approx(np.mean(long))
    assert out == sorted(out, reverse=True)  # shape kept
    uneven = compress(list(range(1001)), 1000)
    assert len(uneven) <= 1000 and uneven[0] == pytest.approx(0.5) and uneven[-1] == 1000


@pytest.mark.parametrize("algo", ["autohas", "autohas-hp"])
def test_autohas_derives_hyperparameters_inside_their_bases(digits, algo):
    recipe = dataclasses.replace(TINY, epochs=2, steps_per_epoch=3)
    search = make(digits, algo, recipe=recipe)
    alpha0 = search.alpha.detach().clone()
    for _ in range(recipe.epochs):
        search.search_epoch()
    method = search.method
    to_h0 = REFERENCE_BATCH / recipe.batch_size
    total = recipe.epochs * recipe.steps_per_epoch
    lrs = [cosine_between(recipe.lr, recipe.lr_min, t // recipe.steps_per_epoch, recipe.epochs) for t in range(total)]
    assert len(method.schedule) == total and method.epoch_ends == [3, 6]
    mean_multiplier = float(np.mean(MULTIPLIERS))
    for value, lr in zip(method.schedule, lrs):
        assert min(MULTIPLIERS) * lr * to_h0 <= value <= max(MULTIPLIERS) * lr * to_h0
        # the logits start near uniform and move by ~2e-3 a step: the basis mean, in H0 units
        assert value == pytest.approx(mean_multiplier * lr * to_h0, rel=0.05)
    hp = method.hparams()
    low, high = min(MULTIPLIERS) * min(lrs) * to_h0, max(MULTIPLIERS) * max(lrs) * to_h0
    assert len(hp["lr_per_epoch"]) == 2
    assert hp["lr_per_epoch"] == pytest.approx([np.mean(method.schedule[:3]), np.mean(method.schedule[3:])])
    assert all(low <= v <= high for v in hp["lr_per_epoch"])
    wd = hp["weight_decay"]
    assert min(MULTIPLIERS) * DEFAULT_WEIGHT_DECAY <= wd <= max(MULTIPLIERS) * DEFAULT_WEIGHT_DECAY
    assert wd == pytest.approx(mean_multiplier * DEFAULT_WEIGHT_DECAY, rel=0.05)
    assert method.training_hparams() == {"lr_schedule": tuple(method.schedule), "weight_decay": wd}
    arch = arch_of(search.derive())
    index = get_space("nats-tss").arch_to_index(arch)  # a valid nats-tss string
    if algo == "autohas-hp":
        assert index == RESNET_CELL_INDEX
        assert torch.equal(search.alpha.detach(), alpha0)  # the architecture is not searched
    else:
        assert not torch.equal(search.alpha.detach(), alpha0)


def _autohas_one_step(digits, lr, seed=0, patch_sample=None):
    """A float64 smooth AutoHAS search after one warm-up step (so the momentum buffer is in play)."""
    search = make(digits, "autohas", recipe=dataclasses.replace(TINY, lr=lr, lr_min=lr), seed=seed)
    smooth(search.supernet).double()
    batches, arch_batches = iter(search.train), iter(search.arch_batches)
    take = lambda it: (lambda x, y: (x.double(), y))(*next(it))  # noqa: E731
    search.method.step(take(batches), take(arch_batches))
    return search, take(batches), take(arch_batches)


def test_autohas_hypergradients_match_brute_force_steps(digits):
    """dL/dP_lr_i - dL/dP_lr_s (and the same for the weight decay) against really taking the weight
    step with basis value i: L_val(W'_i) - L_val(W'_s), the same batch, architecture and state."""
    search, train, valid = _autohas_one_step(digits, lr=1e-4)
    method = search.method
    size = len(MULTIPLIERS)
    lr_s, wd_s = 4, 6  # the sampled basis values (multipliers 1.0 and 5.0)

    def sample(logits):  # forward: the one-hot of the chosen value; backward: identity, so grad = dL/dP
        index = lr_s if logits is method.lr_logits else wd_s
        return F.one_hot(torch.tensor(index), size).to(logits.dtype) + logits - logits.detach(), index

    method._sample = sample
    seen = {}
    arch_kwargs = method.arch_kwargs
    method.arch_kwargs = lambda differentiable: seen.setdefault("arch", arch_kwargs(differentiable))
    adam_step = method.optimizer.step

    def spy(*args, **kwargs):
        seen["lr"], seen["wd"] = method.lr_logits.grad.clone(), method.wd_logits.grad.clone()
        return adam_step(*args, **kwargs)

    method.optimizer.step = spy
    weights, optimizer = copy.deepcopy(search.supernet.state_dict()), copy.deepcopy(search.w_optimizer.state_dict())
    method.step(train, valid)
    indices = seen["arch"]["indices"]
    lrs, wds = method.lr_basis(), method.wd_basis

    def validation_loss_after(lr, wd):
        search.supernet.load_state_dict(weights)
        search.w_optimizer.load_state_dict(copy.deepcopy(optimizer))
        for group in search.w_optimizer.param_groups:
            group["lr"], group["weight_decay"] = lr, wd
        search.w_optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(search.supernet(train[0], indices=indices), train[1]).backward()
        clip_gradients(search.supernet.parameters(), search.recipe.grad_clip)
        search.w_optimizer.step()
        with torch.no_grad():
            return float(F.cross_entropy(search.supernet(valid[0], indices=indices), valid[1]))

    base = validation_loss_after(float(lrs[lr_s]), float(wds[wd_s]))
    lr_actual = [validation_loss_after(float(lrs[i]), float(wds[wd_s])) - base for i in range(size)]
    wd_actual = [validation_loss_after(float(lrs[lr_s]), float(wds[j])) - base for j in range(size)]
    lr_predicted = (seen["lr"] - seen["lr"][lr_s]).tolist()
    wd_predicted = (seen["wd"] - seen["wd"][wd_s]).tolist()
    for i in range(size):
        if i != lr_s:
            assert lr_predicted[i] == pytest.approx(lr_actual[i], rel=5e-3), i
        if i != wd_s:
            assert wd_predicted[i] == pytest.approx(wd_actual[i], rel=1e-3), i
    # the same ordering: the validation loss is monotone in the learning rate here, and so is its prediction
    assert np.argsort(lr_actual).tolist() == np.argsort(lr_predicted).tolist()
    assert np.argsort(wd_actual).tolist() == np.argsort(wd_predicted).tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_autohas_update_favours_larger_learning_rates_when_the_step_helped(digits, seed):
    """Sign consistency with the real Gumbel straight-through sample and Adam: G . u > 0 (the step
    taken lowered the validation loss to first order) raises the expected learning rate, else lowers it."""
    search = make(digits, "autohas", recipe=dataclasses.replace(TINY, lr=1e-3, lr_min=1e-3), seed=seed)
    method = search.method
    train, valid = first_batches(search)
    seen = {}
    arch_kwargs = method.arch_kwargs
    method.arch_kwargs = lambda differentiable: seen.setdefault("arch", arch_kwargs(differentiable))
    before = [p.detach().clone() for p in search.supernet.parameters()]
    lr_before = expected(method.lr_logits, method.lr_basis())
    method.step(train, valid)
    lr_after = expected(method.lr_logits, method.lr_basis())
    params = list(search.supernet.parameters())
    loss = F.cross_entropy(search.supernet(valid[0], indices=seen["arch"]["indices"]), valid[1])
    grads = torch.autograd.grad(loss, params, allow_unused=True)  # the ops not sampled are unused
    along = float(sum((g * (b - p.detach())).sum() for g, b, p in zip(grads, before, params) if g is not None))
    assert along != 0 and lr_after != lr_before
    assert (lr_after > lr_before) == (along > 0)
    assert method.schedule == [pytest.approx(lr_after * REFERENCE_BATCH / TINY.batch_size)]


# ------------------------------------------------------------------------------------------------
# Re-training after the search


def test_autohas_retraining_uses_the_derived_schedule_and_resumes_exactly(digits, monkeypatch):
    import autohas.trainables.train as train_module
    import autohas.trainables.weight_sharing.search as search_module

    monkeypatch.setattr(search_module, "cached_splits", lambda *a: digits)
    monkeypatch.setattr(train_module, "cached_splits", lambda *a: digits)
    used = []
    train_results = train_module.train_results

    def spy(setup, *args, **kwargs):
        used.append(setup)
        return train_results(setup, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_results", spy)
    recipe = dataclasses.replace(TINY, epochs=2, retrain_epochs=2)
    setup = SearchSetup("nats-tss", "digits", None, "autohas", 0, recipe=recipe)
    torch.set_num_threads(1)
    # a yielded state holds the live tensors (state_dict): copy it as the checkpoint would save it
    runs = [(result, copy.deepcopy(state)) for result, state in search_results(setup, "t")]
    results = [r for r, _ in runs]
    assert [r["epoch"] for r in results] == [1, 2, 3, 4]
    assert [r["hparams"].get("retrain_epochs") for r in results] == [None, None, 1, 2]
    searched = runs[1][1]
    assert results[2]["arch"] == results[3]["arch"] == arch_of(searched["derived"])
    assert results[2]["trial_sim_seconds"] > results[1]["trial_sim_seconds"]

    schedule = tuple(searched["method"]["schedule"])
    assert len(schedule) == recipe.epochs * recipe.steps_per_epoch
    retrain = used[0].recipe
    assert used[0].budget == 2 and retrain.epochs == 2
    assert retrain.lr_schedule == schedule
    wd = expected(searched["method"]["wd_logits"], torch.tensor(MULTIPLIERS) * DEFAULT_WEIGHT_DECAY)
    assert retrain.weight_decay == pytest.approx(wd)
    assert results[3]["hparams"]["weight_decay"] == pytest.approx(wd)
    steps = runs[3][1]["retrain"]["optimizer"]["state"]
    per_epoch = -(-len(digits.train) // retrain.batch_size)
    total = 2 * per_epoch
    assert retrain.lr_at(0, 0, per_epoch) == pytest.approx(schedule[0])
    assert retrain.lr_at(2, 0, per_epoch) == pytest.approx(schedule[-1])
    for step in range(total):
        where = step / total * (len(schedule) - 1)
        a, b = schedule[int(np.floor(where))], schedule[int(np.ceil(where))]
        assert min(a, b) - 1e-12 <= retrain.lr_at(step // per_epoch, step % per_epoch, per_epoch) <= max(a, b) + 1e-12
    # the optimiser really ran with it: the last step's learning rate and the derived weight decay
    group = runs[3][1]["retrain"]["optimizer"]["param_groups"][0]
    assert group["lr"] == pytest.approx(retrain.lr_at(1, per_epoch - 1, per_epoch))
    assert group["weight_decay"] == pytest.approx(wd)
    assert steps  # momentum buffers exist: steps were taken

    resumed = list(search_results(setup, "t", state=runs[2][1]))
    assert [r["epoch"] for r, _ in resumed] == [4]
    again = resumed[0][0]
    for key in ("valid_acc", "test_acc", "arch", "arch_index"):
        assert again[key] == results[3][key], key
    assert again["hparams"] == results[3]["hparams"]


@pytest.mark.parametrize("noise_on", ["probabilities", "log-probabilities"])
def test_autohas_puts_the_gumbel_noise_where_its_setting_says(digits, noise_on):
    """Default: Eqs. 4.6-4.8, argmax of softmax(P) + o forward, d softmax((softmax(P) + o) / tau) backward;
    `noise_on="log-probabilities"`: GDAS' construction, log_softmax(P) + o."""
    from autohas.trainables.weight_sharing.methods.autohas import AutoHasSettings

    settings = AutoHasSettings() if noise_on == "probabilities" else AutoHasSettings(noise_on=noise_on)
    search = SupernetSearch(SearchSetup("has", "digits", None, "autohas", 0, recipe=TINY, settings=settings), splits=digits)
    logits = (torch.randn(4, 9, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 3).requires_grad_()
    search.generator.manual_seed(11)
    hard, index = search.method.straight_through(logits)
    # the same noise, drawn by hand from the same generator state
    noise = -torch.empty(4, 9, dtype=torch.float64).exponential_(generator=torch.Generator().manual_seed(11)).log()
    base = F.softmax(logits, -1) if noise_on == "probabilities" else F.log_softmax(logits, -1)
    soft = F.softmax((base + noise) / settings.tau, -1)
    assert index == (base + noise).argmax(-1).tolist()
    assert torch.equal(hard.detach(), F.one_hot(torch.tensor(index), 9).double())
    weights = torch.randn(4, 9, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    (mine,) = torch.autograd.grad((hard * weights).sum(), logits)
    (expected_grad,) = torch.autograd.grad((soft * weights).sum(), logits)
    torch.testing.assert_close(mine, expected_grad, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="noise_on"):
        AutoHasSettings(noise_on="logits")


def test_a_method_takes_only_its_own_settings_and_method_settings_picks_them(digits):
    from autohas.trainables.weight_sharing.methods.gdas import GdasSettings
    from autohas.trainables.weight_sharing.methods.size import TasSettings
    from autohas.trainables.weight_sharing.search import method_settings

    assert method_settings("tas", warmup_ratio=0.25, flops_target=40.0) == TasSettings(warmup_ratio=0.25, flops_target=40.0)
    assert method_settings("gdas", warmup_ratio=0.25, flops_target=40.0) == GdasSettings()  # not gdas' options
    sanas = method_settings("sanas-gdas", tau_min=0.5, every=2)
    assert (sanas.tau_min, sanas.every, sanas.arch_every) == (0.5, 2, 5)  # GDAS' and the saliency settings
    gdas = SupernetSearch(SearchSetup("nats-tss", "digits", None, "gdas", 0, recipe=TINY, settings=GdasSettings(tau_max=4.0)),
                          splits=digits)
    gdas.method.start_epoch(0)
    assert gdas.method.tau == 4.0
    with pytest.raises(TypeError, match="GdasSettings"):
        SupernetSearch(SearchSetup("nats-tss", "digits", None, "gdas", 0, recipe=TINY, settings=TasSettings()), splits=digits)
