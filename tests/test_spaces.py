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
def test_sample_is_seeded_and_mutate_changes_exactly_one_decision(name):
    space = get_space(name)
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert len(set(a)) == 1
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(200)]
    assert len(set(samples)) > 150
    for arch in samples:
        child = space.mutate(arch, rng)
        diff = [x != y for x, y in zip(space.decode(arch), space.decode(child))]
        assert sum(diff) == 1


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
