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
