"""Shared test set-up.

The derived-artefact cache (converted encoder, URIEL table) goes to a fresh folder per test session unless
ALCHEMY_TUNE_CACHE is already set, so the suite proves that a fresh machine can build everything.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

_CACHE = os.environ.setdefault("ALCHEMY_TUNE_CACHE", tempfile.mkdtemp(prefix="alchemy-tune-cache-"))
if os.path.basename(_CACHE).startswith("alchemy-tune-cache-"):
    # the converted encoder alone is 470 MB: don't leave it in /tmp after every session
    atexit.register(shutil.rmtree, _CACHE, True)
# Keep torch to the CI machine's size; tests run the real code paths, just small.
os.environ.setdefault("OMP_NUM_THREADS", "2")


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
