"""Dataset language codes -> the lang2vec (ISO 639-3) code whose URIEL vector a language gets.

Accepted: BCP-47 locales (``sw-KE``, ``zh-CN``, ``pt-PT``; script and region subtags are ignored because
URIEL has one entry per language), ISO 639-1 (``sw``), ISO 639-3 codes lang2vec knows (``swh``, ``eng``),
and dataset-specific codes (SemRel's ``esp``).

Rule: a two-letter code goes through lang2vec's own ``letter_codes.json``, which is what
``lang2vec.get_features("sw", ...)`` does itself; a three-letter code lang2vec knows is kept (but for
member codes of macro-languages, below). This gives
the codes of the paper's released vectors (``ar-SA -> ara``, ``fa-IR -> fas``, ``sw-KE -> swa``,
``zh-CN``/``zh-TW -> zho``, ``ms-MY -> msa``, ``sq-AL -> sqi``, ``az-AZ -> aze``); ``nb`` (letter code
``nob``) becomes ``nor`` by the macro-language policy below, as in the paper's vectors.

Policy for macro-languages (one per language, the same in every task): a member code of a macro-language
in :data:`MACRO_MEMBERS` maps to the macro-language code, so Arabic, Chinese, Persian and Swahili get
``ara``/``zho``/``fas``/``swa`` whether a dataset writes ``ar-SA`` (MASSIVE) or ``arb`` (the bundled corpus,
SemRel's Modern Standard Arabic), ``zh-CN`` or ``cmn``, ``fa-IR`` or ``pes``, ``sw-KE`` or ``swh``. These are
the codes of the paper's vectors, and lang2vec's archives file most observed data under them: the macro
code's coverage is at least the member's in every averaged set (syntax_average ``ara`` 98/103 vs ``arb``
66, ``zho`` 102 vs ``cmn`` 94, ``msa`` 101 vs ``zsm`` 12, ``aze`` 55 vs ``azj`` 0; equal for ``fas``/``pes``
and ``swa``/``swh``, whose geo coordinates differ). Distinct varieties that are not a macro-language's
default member keep their own codes (``ary`` Moroccan, ``arq`` Algerian Arabic). (``lang2vec.LANGUAGES``
omits the macro codes only through a bug; see :mod:`alchemy_tune.languages.uriel`.)

Languages with no observed syntax at all (MasakhaNews ``pcm``, SemRel ``arq``) map to themselves: their
``syntax_knn`` row is lang2vec's imputation and ``geo`` is real, while ``syntax_average`` is entirely
missing and filled by the missing-value policy. A proxy language (English for Nigerian Pidgin, Moroccan
Arabic for Algerian) would invent a typology; :func:`mapping_note` says so instead.
"""

from __future__ import annotations

import difflib
import functools

import json

from alchemy_tune.core.errors import UsageError
from alchemy_tune.languages.uriel import UrielTable, lang2vec_data_dir

# Codes that a dataset uses but that are not ISO codes of the language meant.
_DATASET_CODES: dict[str, tuple[str, str]] = {
    # SemRel 2024 names its Spanish track 'esp' (not an ISO 639-3 code lang2vec knows).
    "esp": ("spa", "SemRel's Spanish code 'esp' is ISO 639-3 'spa'"),
}

# Macro-language -> the individual language a dataset's text usually is: the member code maps to the macro.
MACRO_MEMBERS: dict[str, str] = {
    "ara": "arb", "aze": "azj", "est": "ekk", "fas": "pes", "lav": "lvs", "mon": "khk", "msa": "zsm",
    "nor": "nob", "orm": "gaz", "sqi": "als", "swa": "swh", "uzb": "uzn", "zho": "cmn",
}
_MACRO_OF: dict[str, str] = {member: macro for macro, member in MACRO_MEMBERS.items()}


@functools.lru_cache(maxsize=1)
def _letter_codes() -> dict[str, str]:
    path = lang2vec_data_dir() / "letter_codes.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _resolve(code: object) -> tuple[str, str | None]:
    """(lang2vec code, why it is not the input verbatim or None)."""
    if not isinstance(code, str) or not code.strip():
        raise UsageError(f"language code: expected a non-empty string, got {code!r}")
    text = code.strip()
    lowered = text.lower()
    if lowered in _DATASET_CODES:
        return _DATASET_CODES[lowered]
    subtag = lowered.replace("_", "-").split("-")[0]
    table = UrielTable.load()
    if len(subtag) == 2:
        target = _letter_codes().get(subtag)
        if target is not None and target in table:
            return _MACRO_OF.get(target, target), None  # nb: letter code 'nob' -> 'nor', as in the paper
    elif len(subtag) == 3:
        if subtag in _DATASET_CODES:
            return _DATASET_CODES[subtag]
        if subtag in _MACRO_OF:
            return _MACRO_OF[subtag], None  # the macro-language policy above; mapping_note explains
        if subtag in table:
            return subtag, None
    raise UsageError(_unknown_message(text, table.languages))


def to_uriel(code: str) -> str:
    """The lang2vec code for a dataset language code.

    Example:
        >>> to_uriel("sw-KE"), to_uriel("swh"), to_uriel("ary"), to_uriel("esp")
        ('swa', 'swa', 'ary', 'spa')
    """
    return _resolve(code)[0]


def mapping_note(code: str) -> str | None:
    """Why ``code`` got the URIEL entry it got, when that is not obvious; None for a direct mapping.

    Notes cover: overrides and dataset-specific codes, a locale or two-letter code that lands on a
    macro-language (naming the member language and both coverages), and a language without any
    observed syntax (its syntax_average comes entirely from the missing-value policy).
    """
    target, why = _resolve(code)
    text = code.strip()
    table = UrielTable.load()
    parts = [why] if why else []
    if target in MACRO_MEMBERS and text.lower() != target:
        member = MACRO_MEMBERS[target]
        n_target, n_member = (_observed_syntax(table, lang) for lang in (target, member))
        parts.append(f"'{target}' is the macro-language code, used for '{member}' too in every task: "
                     f"{n_target}/103 observed syntax_average features vs {n_member}/103 for the member "
                     f"language '{member}'")
    if _observed_syntax(table, target) == 0:
        parts.append(f"lang2vec has no observed syntax for '{target}': syntax_average is entirely missing "
                     "(filled by the missing-value policy), syntax_knn is lang2vec's kNN imputation, "
                     "geo is real")
    if not parts:
        return None
    return f"{text} -> {target} ({'; '.join(parts)})"


def _observed_syntax(table: UrielTable, lang: str) -> int:
    return round(table.coverage("syntax_average", [lang])[lang] * table.dim("syntax_average"))


def _unknown_message(text: str, languages: tuple[str, ...]) -> str:
    known = sorted(set(_letter_codes()) | set(_DATASET_CODES) | set(languages))
    close = difflib.get_close_matches(text.lower().replace("_", "-").split("-")[0], known, n=5, cutoff=0.6)
    hint = f"close known codes: {', '.join(close)}; " if close else ""
    return (f"language code {text!r} is unknown: not an ISO 639-1 code, a lang2vec ISO 639-3 code or a "
            f"dataset code ({', '.join(sorted(_DATASET_CODES))}); {hint}"
            "locales are written like sw-KE, zh-CN")
