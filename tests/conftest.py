"""Shared test set-up.

The derived-artefact cache (converted encoder, URIEL table) goes to a fresh folder per test session unless
ALCHEMY_TUNE_CACHE is already set, so the suite proves that a fresh machine can build everything.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_CACHE = os.environ.setdefault("ALCHEMY_TUNE_CACHE", tempfile.mkdtemp(prefix="alchemy-tune-cache-"))
if os.path.basename(_CACHE).startswith("alchemy-tune-cache-"):
    # the converted encoder alone is 470 MB: don't leave it in /tmp after every session
    atexit.register(shutil.rmtree, _CACHE, True)
# Keep torch to the CI machine's size; tests run the real code paths, just small.
os.environ.setdefault("OMP_NUM_THREADS", "2")
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> str:
    """A tiny randomly initialised BERT + tokenizer folder (loadable with AutoModel/AutoTokenizer)."""
    from testing.tiny_encoder import make_tiny_encoder

    return str(make_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder")))


@pytest.fixture(scope="session")
def tiny_pooler_encoder_dir(tmp_path_factory) -> str:
    """The tiny BERT with a (pretrained-style, saved) pooler layer, as mBERT and XLM-R checkpoints have."""
    from testing.tiny_encoder import make_tiny_encoder

    return str(make_tiny_encoder(tmp_path_factory.mktemp("tiny-pooler-encoder"), pooler=True))


@pytest.fixture
def s3(monkeypatch, tmp_path):
    """An S3 API (moto in server mode) on 127.0.0.1 with a bucket `alchemy`; pyarrow (and so Ray Tune and the
    run's tables) reach it through AWS_ENDPOINT_URL, in this process and in every process started after."""
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_EC2_METADATA_DISABLED": "true",
                       # the driver and the resume share this machine's cache (the journal's local copy)
                       "ALCHEMY_TUNE_CACHE": str(tmp_path / "cache"),
                       # scripted trials (tests/scripted_trials.py)
                       "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}.items():
        monkeypatch.setenv(key, value)
    pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http",
                      allow_bucket_creation=True).create_dir("alchemy")
    yield "s3://alchemy/runs"
    server.stop()


# ----------------------------------------------------------------------------- the unit tier
UNIT_MODULES = {
    # test files whose tests need no Ray, no real encoder or corpus weights and no subprocess: the unit tier
    # (`python -m pytest -q -m unit`, docs/testing.md). The guard below makes each promise a failure if broken.
    "test_aligned", "test_codes", "test_config", "test_imports", "test_lambdas", "test_metrics", "test_numbers",
    "test_optim", "test_run_record", "test_search_settings", "test_space", "test_stats", "test_tasks_subsets",
    "test_batching", "test_scaling",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in UNIT_MODULES and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def _unit_tier_guard(request, monkeypatch):
    """A unit test that starts Ray, a subprocess or the bundled e5 weights fails, naming what it started."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    import subprocess

    def refuse(what):
        def call(*args, **kwargs):
            raise AssertionError(f"a unit-tier test started {what}; move the test out of UNIT_MODULES "
                                 "(tests/conftest.py)")
        return call

    import ray  # imported before Popen is patched: Ray subclasses it at import time

    monkeypatch.setattr(subprocess, "Popen", refuse("a subprocess"))
    monkeypatch.setattr("alchemy_tune.trial.encoder.bundled_e5", refuse("the bundled e5 encoder"))
    monkeypatch.setattr(ray, "init", refuse("Ray"))
    yield
