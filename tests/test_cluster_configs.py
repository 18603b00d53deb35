"""The Ray cluster-launcher YAMLs in cluster/: offline checks, no cloud calls.

Each file goes through what `ray up` does before it touches a cloud: Ray's
`prepare_config` (merge with the provider's defaults) and `validate_config` (Ray's JSON
schema, ray/autoscaler/ray-schema.json, plus its cross-field checks).
"""

import copy
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

# The two functions `ray up` (commands._bootstrap_config) calls, from the module it calls them in.
from ray.autoscaler._private.commands import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
NAMES = ["aws", "gcp", "local"]
CLOUDS = ["aws", "gcp"]
STORAGE = {"aws": "--storage s3://", "gcp": "--storage gs://", "local": "--storage /mnt/shared/"}


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / f"{name}.yaml").read_text())


def bootstrap(config: dict) -> dict:
    """What `ray up` checks before it calls the provider: raises on an invalid config."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def header(name: str) -> str:
    """The comment block at the top of the file."""
    lines = []
    for line in (CLUSTER / f"{name}.yaml").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def worker_types(config: dict) -> dict:
    return {k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]}


def gpus(config: dict, node_type: dict) -> float:
    """GPUs a node type advertises: explicit resources, else (AWS) a g*/p* instance family."""
    explicit = node_type.get("resources", {}).get("GPU", 0)
    if explicit:
        return explicit
    if config["provider"]["type"] == "aws" and re.match(r"^[gp]\d", node_type["node_config"].get("InstanceType", "")):
        return 1
    return 0


@pytest.mark.parametrize("name", NAMES)
def test_valid_for_ray_up(name):
    config = load(name)
    assert config["provider"]["type"] == name
    prepared = bootstrap(config)
    assert prepared["head_node_type"] in prepared["available_node_types"]


def _mutations():
    def bad_number(c):
        c["idle_timeout_minutes"] = "ten"

    def unknown_key(c):
        c["max_worker"] = 3  # a misspelling: the schema allows no extra keys

    def bad_command(c):
        c["setup_commands"] = [*c["setup_commands"], 42]

    def bad_gpu_count(c):
        node_type = next(iter(worker_types(c).values()))
        node_type["resources"] = {**node_type["resources"], "GPU": "1"}

    cases = [(name, f) for name in NAMES for f in (bad_number, unknown_key, bad_command)]
    cases += [(name, bad_gpu_count) for name in CLOUDS]  # local: Ray makes the node types itself
    return [pytest.param(name, f, id=f"{name}-{f.__name__}") for name, f in cases]


@pytest.mark.parametrize("name,mutate", _mutations())
def test_validator_rejects_a_broken_copy(name, mutate):
    config = load(name)
    bootstrap(config)  # the file itself passes...
    broken = copy.deepcopy(config)
    mutate(broken)
    with pytest.raises(jsonschema.ValidationError):  # ...and the same validator rejects the broken copy
        bootstrap(broken)


@pytest.mark.parametrize("name", NAMES)
def test_ships_and_installs_the_checkout(name):
    config = load(name)
    # file_mounts: a remote folder <- "." (the repository root, where `ray up` runs)
    mounts = {remote: local for remote, local in config["file_mounts"].items() if (REPO / local).resolve() == REPO}
    assert mounts, f"no file_mounts entry ships the checkout: {config['file_mounts']}"
    remote = next(iter(mounts))
    assert remote == "~/autohas"
    # ...without the local venv or results (.gitignore lists them)
    ignored = (REPO / ".gitignore").read_text().split()
    assert ".gitignore" in config.get("rsync_filter", []) and ".venv/" in ignored and "results/" in ignored
    # setup_commands (every node) install the shipped checkout, with the dashboard/job-submission extras
    setup = config["setup_commands"]
    installs = [c for c in setup if "pip install" in c and "autohas" in c]
    assert installs, f"no setup command pip-installs autohas: {setup}"
    assert any(f"-e {remote}" in c for c in installs), installs
    assert any("ray[default]" in c for c in installs), installs
    # ...and are what `ray up` runs on head and workers
    prepared = bootstrap(config)
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert all(c in prepared[key] for c in installs), key


@pytest.mark.parametrize("name", NAMES)
def test_start_commands(name):
    config = load(name)
    head = " ".join(config["head_start_ray_commands"])
    assert "ray start --head" in head and "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "ray start --address=$RAY_HEAD_IP:6379" in " ".join(config["worker_start_ray_commands"])


@pytest.mark.parametrize("name", CLOUDS)
def test_gpu_workers_and_autoscaling_bounds(name):
    config = load(name)
    workers = worker_types(config)
    gpu_types = [k for k, v in workers.items() if gpus(config, v) > 0]
    assert gpu_types, f"no GPU worker type in {list(workers)}"
    for key, node_type in config["available_node_types"].items():
        low = node_type.get("min_workers", 0)
        high = node_type.get("max_workers", config["max_workers"])
        assert 0 <= low <= high, key
    total_min = sum(v.get("min_workers", 0) for v in config["available_node_types"].values())
    assert config["max_workers"] >= total_min
    assert config["idle_timeout_minutes"] > 0
    # autohas refuses --gpus-per-trial when no GPU node is up (runner.trial_resources): keep one
    assert any(workers[k].get("min_workers", 0) >= 1 for k in gpu_types)


def test_gcp_gpu_types_state_their_gpus():
    """GCP does not infer GPUs; GPU VMs must not live-migrate."""
    config = load("gcp")
    gpu_machine = re.compile(r"^(a2|a3|g2)-")  # machine types that come with GPUs
    for key, node_type in config["available_node_types"].items():
        node_config = node_type["node_config"]
        attached = sum(a["acceleratorCount"] for a in node_config.get("guestAccelerators", []))
        has_gpus = attached > 0 or bool(gpu_machine.match(node_config["machineType"]))
        advertised = node_type["resources"].get("GPU", 0)
        if not has_gpus:
            assert advertised == 0, key
            continue
        assert advertised > 0, key
        if attached:
            assert advertised == attached, key
        assert node_config["scheduling"]["onHostMaintenance"] == "TERMINATE", key


def test_aws_nodes_can_write_the_bucket():
    """Every node gets the instance profile: trials on workers write checkpoints to S3."""
    config = load("aws")
    for key, node_type in config["available_node_types"].items():
        assert node_type["node_config"].get("IamInstanceProfile"), key


def test_local_workers_are_fixed():
    config = load("local")
    n = len(config["provider"]["worker_ips"])
    assert n >= 1 and config["provider"]["head_ip"]
    assert config["min_workers"] == config["max_workers"] == n
    node_type = bootstrap(config)["available_node_types"]["local.cluster.node"]
    assert node_type["min_workers"] == node_type["max_workers"] == n


@pytest.mark.parametrize("name", NAMES)
def test_header_has_the_commands(name):
    text = header(name)
    assert "cluster/launch.py" in text
    for command in (
        f"ray up cluster/{name}.yaml",
        f"ray submit cluster/{name}.yaml cluster/launch.py --",
        f"ray dashboard cluster/{name}.yaml",
        "ray job submit --address http://127.0.0.1:8265",
        f"ray down cluster/{name}.yaml",
        STORAGE[name],
    ):
        assert command in text, command
