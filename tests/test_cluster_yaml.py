"""clusters/gpu.yaml against Ray's own cluster-config schema, plus what alchemy-tune needs from it."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CONFIG = Path(__file__).resolve().parent.parent / "clusters" / "gpu.yaml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_passes_rays_schema_after_the_launchers_own_defaults(raw):
    # `ray up` runs exactly these two steps before launching anything
    validate_config(prepare_config(copy.deepcopy(raw)))


def test_the_schema_check_is_real(raw):
    broken = copy.deepcopy(raw)
    broken["available_node_types"]["gpu_worker"]["min_workerz"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_cpu_head_and_gpu_workers_on_current_images(raw):
    nodes = raw["available_node_types"]
    head = nodes[raw["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and "g" not in head["node_config"]["InstanceType"][:1]
    workers = [n for name, n in nodes.items() if name != raw["head_node_type"]]
    assert any(w["node_config"]["InstanceType"].startswith(("g", "p")) for w in workers)
    images = [v for k, v in raw["docker"].items() if k.endswith("image")]
    for image in images:
        assert image.startswith("rayproject/ray:") and "ray-ml" not in image
        # the image's Ray is the one installed here (same major.minor): the driver and nodes must match
        version = re.match(r"rayproject/ray:(\d+\.\d+)\.\d+", image).group(1)
        assert ray.__version__.startswith(version + ".")
    assert raw["docker"]["worker_image"].endswith("-gpu")


def test_every_node_installs_the_package_and_writes_to_shared_storage(raw):
    mounts = raw["file_mounts"]
    (remote,) = [r for r, local in mounts.items() if local == "."]
    assert any(f"pip install -e {remote}" in cmd for cmd in raw["setup_commands"])  # head and workers
    storage = [opt for opt in raw["docker"]["run_options"] if "ALCHEMY_TUNE_STORAGE=" in opt]
    assert storage and "://" in storage[0]


def test_nodes_boot_a_pinned_current_gpu_image(raw):
    """Without ImageId Ray launches an Ubuntu 18.04 / CUDA 11.2 image that cannot run the CUDA 12 Ray image."""
    text = CONFIG.read_text()
    for name, node in raw["available_node_types"].items():
        assert re.fullmatch(r"ami-[0-9a-f]{17}", node["node_config"].get("ImageId", "")), name
    assert "REGION-SPECIFIC" in text and "describe-images" in text  # how to find the id for another region
    assert raw["provider"]["region"] in text.split("ImageId:")[1]  # the note names the region it is for


def test_workers_get_a_profile_limited_to_the_run_bucket(raw):
    import json

    worker = raw["available_node_types"]["gpu_worker"]["node_config"]
    assert worker["IamInstanceProfile"]["Name"] != "ray-autoscaler-v1"  # not the head's launch rights
    policy = json.loads((CONFIG.parent / "worker-s3-policy.json").read_text())
    storage = next(o for o in raw["docker"]["run_options"] if "ALCHEMY_TUNE_STORAGE=" in o).split("=", 1)[1]
    bucket, _, prefix = storage.removeprefix("s3://").partition("/")
    for statement in policy["Statement"]:
        assert all(a.startswith("s3:") for a in statement["Action"])
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        assert all(r in (f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{prefix}/*") for r in resources)


# ----------------------------------------------------------------------------- clusters/onprem.yaml
ONPREM = CONFIG.parent / "onprem.yaml"


@pytest.fixture(scope="module")
def onprem() -> dict:
    return yaml.safe_load(ONPREM.read_text())


def test_onprem_passes_rays_schema_after_the_launchers_own_defaults(onprem):
    prepared = prepare_config(copy.deepcopy(onprem))
    validate_config(prepared)
    # the local provider's single node type, with every listed worker kept up
    (node_type,) = prepared["available_node_types"].values()
    assert node_type["min_workers"] == node_type["max_workers"] == len(onprem["provider"]["worker_ips"])


def test_onprem_schema_check_is_real(onprem):
    broken = copy.deepcopy(onprem)
    broken["auth"]["ssh_private_keyz"] = "~/.ssh/id"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_onprem_marks_every_site_specific_value(onprem):
    provider, auth = onprem["provider"], onprem["auth"]
    assert provider["type"] == "local"
    for value in (provider["head_ip"], *provider["worker_ips"], auth["ssh_user"], auth["ssh_private_key"]):
        assert "CHANGE-ME" in value
    setup = "\n".join(onprem["setup_commands"])
    assert "ALCHEMY_TUNE_STORAGE=/mnt/CHANGE-ME" in setup and "alchemy-venv" in setup


def test_onprem_installs_the_package_sets_storage_and_starts_the_dashboard(onprem):
    (remote,) = [r for r, local in onprem["file_mounts"].items() if local == "."]
    setup = onprem["setup_commands"]
    assert setup[-1] == f"pip install -e {remote}"
    # the environment file is written before it is sourced from ~/.bashrc, and before the install
    env_lines = [i for i, cmd in enumerate(setup) if "~/.alchemy-tune-env" in cmd]
    assert env_lines and max(env_lines) < len(setup) - 1
    assert any("export ALCHEMY_TUNE_STORAGE=" in cmd for cmd in setup)
    head_start = onprem["head_start_ray_commands"][-1]
    assert "--head" in head_start and "--include-dashboard=true" in head_start
    assert "--dashboard-host" not in head_start  # the jobs API stays on the head's loopback
    assert all("$RAY_HEAD_IP" in c for c in onprem["worker_start_ray_commands"] if "ray start" in c)
