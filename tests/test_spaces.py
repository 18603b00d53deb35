import bz2
import itertools
import pickle

import numpy as np
import pytest

from autohas.errors import AutohasError
from autohas.spaces import SPACE_NAMES, get_space

# Official strings at known indices (NAS-Bench-201 / NATS-Bench meta lists).
TSS_KNOWN = {
    0: "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    1: "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    9: "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    123: "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
    11472: "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
    15624: "|nor_conv_1x1~0|+|none~0|nor_conv_1x1~1|+|none~0|nor_conv_1x1~1|nor_conv_1x1~2|",
}
SSS_KNOWN = {0: "8:8:8:8:8", 1: "8:8:8:8:16", 8: "8:8:8:16:8", 284: "8:8:40:32:40", 32767: "64:64:64:64:64"}


def test_sizes_and_registry():
    assert SPACE_NAMES == ("nats-tss", "nats-sss")
    assert get_space("nats-tss").size == 15625
    assert get_space("nats-sss").size == 32768
    with pytest.raises(AutohasError, match="unknown space"):
        get_space("darts")


@pytest.mark.parametrize("name,known", [("nats-tss", TSS_KNOWN), ("nats-sss", SSS_KNOWN)])
def test_known_official_indices(name, known):
    space = get_space(name)
    for index, arch in known.items():
        assert space.index_to_arch(index) == arch
        assert space.arch_to_index(arch) == index


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_index_is_a_bijection_and_config_round_trips(name):
    space = get_space(name)
    archs = [space.index_to_arch(i) for i in range(space.size)]
    assert len(set(archs)) == space.size
    for i in range(0, space.size, 997):
        arch = archs[i]
        assert space.arch_to_index(arch) == i
        config = space.arch_to_config(arch)
        assert set(config) == {d.name for d in space.decisions}
        assert space.config_to_arch(config) == arch
        # searchers may hand back numpy scalars
        assert space.config_to_arch({k: np.array([v])[0] for k, v in config.items()}) == arch


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_sample_is_seeded_and_mutate_changes_at_most_one_decision(name):
    space = get_space(name)
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert len(set(a)) == 1
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(200)]
    assert len(set(samples)) > 150
    for arch in samples:
        child = space.mutate(arch, rng)
        diff = [x != y for x, y in zip(space.decode(arch), space.decode(child))]
        # tss: exactly one edge changes; sss may draw the old width again (the reference's REA)
        assert sum(diff) == 1 if name == "nats-tss" else sum(diff) <= 1


def _counts(name: str, draws: int):
    """How often each decision changed, and how many children equal their parent, over `draws` mutations."""
    space, rng = get_space(name), np.random.default_rng(1)
    changed, same = np.zeros(len(space.decisions)), 0
    for _ in range(draws):
        parent = space.sample(rng)
        diff = [x != y for x, y in zip(space.decode(parent), space.decode(space.mutate(parent, rng)))]
        changed += diff
        same += not any(diff)
    return changed, same


def test_tss_mutation_picks_a_node_then_an_incoming_edge():
    """Edges into node 1, 2, 3 with probability 1/3, 1/6 each, 1/9 each (the reference's REA), by chi-square."""
    from scipy.stats import chisquare

    draws = 18000
    changed, same = _counts("nats-tss", draws)  # EDGES order: (1,0), (2,0), (2,1), (3,0), (3,1), (3,2)
    expected = draws * np.array([1 / 3, 1 / 6, 1 / 6, 1 / 9, 1 / 9, 1 / 9])
    assert same == 0 and changed.sum() == draws
    assert chisquare(changed, expected).pvalue > 1e-3
    assert chisquare(changed, np.full(6, draws / 6)).pvalue < 1e-12  # not uniform over edges


def test_sss_mutation_picks_a_layer_and_any_width():
    """A uniform layer gets a uniform width of 8, so the child equals its parent 1 time in 8."""
    from scipy.stats import binomtest, chisquare

    draws = 16000
    changed, same = _counts("nats-sss", draws)
    assert binomtest(same, draws, 1 / 8).pvalue > 1e-3
    assert chisquare(changed, np.full(5, changed.sum() / 5)).pvalue > 1e-3


def test_param_space_lists_every_choice():
    space = get_space("nats-sss")
    ps = space.param_space()
    assert list(ps) == [f"layer_{i}" for i in range(5)]
    assert ps["layer_3"].categories == [8, 16, 24, 32, 40, 48, 56, 64]


@pytest.mark.parametrize(
    "name,bad",
    [
        ("nats-tss", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
        ("nats-tss", "|none~0|+|none~0|none~1|"),
        ("nats-tss", "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"),
        ("nats-sss", "8:8:8:8"),
        ("nats-sss", "8:8:8:8:12"),
        ("nats-sss", "a:b:c:d:e"),
    ],
)
def test_malformed_strings_are_clear_errors(name, bad):
    with pytest.raises(AutohasError, match="not a nats-"):
        get_space(name).arch_to_index(bad)


def test_out_of_range_index_and_bad_config():
    with pytest.raises(AutohasError, match="out of range"):
        get_space("nats-tss").index_to_arch(15625)
    with pytest.raises(AutohasError, match="lacks decision"):
        get_space("nats-sss").config_to_arch({"layer_0": 8})
    with pytest.raises(AutohasError, match="not a choice"):
        get_space("nats-sss").config_to_arch({f"layer_{i}": 12 for i in range(5)})


@pytest.mark.parametrize(
    "name,folder",
    [("nats-tss", "NATS-tss-v1_0-3ffb9-simple"), ("nats-sss", "NATS-sss-v1_0-50262-simple")],
)
def test_order_equals_the_official_meta_file(official_path, name, folder):
    with bz2.open(official_path / folder / "meta.pickle.pbz2", "rb") as handle:
        meta = pickle.load(handle)["meta_archs"]
    space = get_space(name)
    assert len(meta) == space.size
    assert [space.index_to_arch(i) for i in range(space.size)] == meta


def test_tss_enumeration_covers_every_cell():
    space = get_space("nats-tss")
    ops = space.decisions[0].choices
    every = {space.encode(g) for g in itertools.product(ops, repeat=6)}
    assert every == {space.index_to_arch(i) for i in range(space.size)}
