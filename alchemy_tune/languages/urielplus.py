"""URIEL+ language vectors (the ``urielplus`` package, Khan et al., COLING 2025), a second source beside lang2vec.

URIEL+ is URIEL's archives with Grambank, APICS, BDPROTO, SAPHON, eWAVE and Glottolog integrated, plus
script features; after integration languages are keyed by Glottocode. The package computes that
integration at run time (``URIELPlus().integrate_databases()``: minutes and gigabytes of memory), so this
module runs it once with the package's own code, reduces it to what a trial needs and keeps the result
as one compact cache file (``$ALCHEMY_TUNE_CACHE/uriel-urielplus-<version>.npz``); a trial then gets its
vectors in milliseconds, like :mod:`alchemy_tune.languages.uriel`.

Feature sets are URIEL+'s own query categories (``URIELPlus.get_vector``): ``syntactic`` (``S_``),
``phonological`` (``P_``), ``inventory`` (``INV_``), ``morphological`` (``M_``), ``featural`` (all 828
typological features), ``geographic``, ``genetic`` (phylogeny) — and ``script``, read from the script
matrix because ``get_vector('script')`` returns an empty vector in urielplus 1.3.2. A typological value
aggregates the 15 sources with URIEL+'s default rule ``'U'`` (union: the largest known value; -1 when no
source knows it). The paper's ``syntax_* + geo`` correspond to ``syntactic+geographic``.

Missing values: ``zero`` and ``mean`` as for lang2vec. URIEL+'s imputation (kNN, MIDAS, SoftImpute) is
not shipped precomputed: it needs the package's ``imputation`` extra (scikit-learn, fancyimpute) and a
long computation, so it is left out rather than run at trial time, and ``knn`` is lang2vec-only.

Codes: a trial's languages arrive as ISO 639-3 (see :mod:`alchemy_tune.languages.codes`) and are looked up through
the package's ``uriel_glottocode_map.csv``. Macro-language codes (``ara``, ``fas``, ``swa``, ``zho``,
``msa``, ``aze``, ...) have no Glottocode there, so URIEL+ has no row for them: their member language is used
(``ara -> arb``) and :func:`mapping_note` says so.
"""

from __future__ import annotations

import csv
import difflib
import importlib.metadata
from pathlib import Path

import numpy as np

from alchemy_tune.core.cache import ProcessMemo, cache_dir
from alchemy_tune.core.errors import UsageError
from alchemy_tune.languages.uriel import VectorTable, read_or_build, split_spec

# set -> (matrix, feature-name prefix); matrices: 0 phylogeny, 1 typological, 2 geography, 3 script.
_SETS: dict[str, tuple[int, str]] = {
    "syntactic": (1, "S_"),
    "phonological": (1, "P_"),
    "inventory": (1, "INV_"),
    "morphological": (1, "M_"),
    "featural": (1, ""),
    "geographic": (2, ""),
    "genetic": (0, ""),
    "script": (3, ""),
}
FEATURE_SETS: tuple[str, ...] = tuple(_SETS)
DEFAULT_FEATURES = "syntactic+geographic"
MISSING_POLICIES: tuple[str, ...] = ("zero", "mean")
# Macro-language -> the member language URIEL+ has a Glottocode for (the text a dataset usually holds).
MACRO_MEMBERS: dict[str, str] = {
    "ara": "arb", "aze": "azj", "est": "ekk", "fas": "pes", "lav": "lvs", "mon": "khk", "msa": "zsm",
    "nor": "nob", "orm": "gaz", "sqi": "als", "swa": "swh", "uzb": "uzn", "zho": "cmn",
}
_FORMAT = 1
_MISSING = -1.0
_CHUNK = 2048  # rows aggregated at a time: the integrated typological matrix alone is 2.7 GB of float64


def version() -> str:
    return importlib.metadata.version("urielplus")


def cache_path() -> Path:
    return cache_dir() / f"uriel-urielplus-{version()}.npz"


def parse_feature_spec(spec: str) -> tuple[str, ...]:
    """Split ``'syntactic+geographic'`` into validated URIEL+ set names, in order."""
    return split_spec(spec, FEATURE_SETS, DEFAULT_FEATURES, "is not a URIEL+ set; ",
                      "valid for uriel_source urielplus: ")


class UrielPlusTable(VectorTable):
    """URIEL+ vectors by set for every ISO 639-3 code that has a Glottocode (and every Glottocode).

    Example:
        >>> table = UrielPlusTable.load()
        >>> table.vectors("syntactic+geographic", ["eng", "swh"]).shape
        (2, 793)
    """

    source = "urielplus"
    missing_policies = MISSING_POLICIES

    def __init__(self, arrays: dict[str, np.ndarray]):
        super().__init__()
        self.glottocodes: tuple[str, ...] = tuple(arrays["glottocodes"].tolist())
        self._glotto_row = {g: i for i, g in enumerate(self.glottocodes)}
        self._iso_glotto = dict(zip(arrays["iso"].tolist(), arrays["iso_glotto"].tolist()))
        self.languages = tuple(sorted(self._iso_glotto))
        self._columns = {s: arrays[f"columns/{s}"] for s in FEATURE_SETS}
        self._names = {s: arrays[f"names/{s}"] for s in FEATURE_SETS}
        self._typological = arrays["data/typological"]
        self._geographic = arrays["data/geographic"]
        self._script = arrays["data/script"]
        self._genetic_bits, self._genetic_known = arrays["data/genetic_bits"], arrays["data/genetic_known"]

    @classmethod
    def load(cls) -> "UrielPlusTable":
        """The table of this process: read from the cache file, built with urielplus if absent (minutes)."""
        return MEMO.get(lambda: cls(read_or_build(cache_path(), _FORMAT, build_arrays)))

    def glottocode(self, lang: str) -> str:
        """The Glottocode whose row ``lang`` gets (a macro-language gets its member's)."""
        row = self._row_of(lang)
        if row is None:
            raise UsageError(self._unknown(lang))
        return self.glottocodes[row]

    # ----------------------------------------------------------------- VectorTable
    def _parse(self, spec: str) -> tuple[str, ...]:
        return parse_feature_spec(spec)

    def _n_rows(self) -> int:
        return len(self.glottocodes)

    def _row_of(self, lang: str) -> int | None:
        if lang in self._glotto_row:
            return self._glotto_row[lang]
        glotto = self._iso_glotto.get(lang) or self._iso_glotto.get(MACRO_MEMBERS.get(lang, ""))
        return None if glotto is None else self._glotto_row.get(glotto)

    def _raw(self, s: str, rows: np.ndarray) -> np.ndarray:
        matrix, _ = _SETS[s]
        if matrix == 0:
            n = len(self._names[s])
            bits = np.unpackbits(self._genetic_bits[rows], axis=1, count=n).astype(np.float32)
            known = np.unpackbits(self._genetic_known[rows], axis=1, count=n).astype(bool)
            return np.where(known, bits, _MISSING).astype(np.float32)
        data = {1: self._typological, 2: self._geographic, 3: self._script}[matrix]
        return data[rows][:, self._columns[s]].astype(np.float32)

    def _unknown(self, lang: object) -> str:
        text = str(lang)
        close = difflib.get_close_matches(text.lower(), self.languages, n=5, cutoff=0.6)
        hint = f"close codes: {', '.join(close)}; " if close else ""
        return (f"language {text!r} has no URIEL+ entry (urielplus {version()}: {len(self.languages)} ISO 639-3 "
                f"codes with a Glottocode, or a Glottocode); {hint}dataset codes and locales are mapped with "
                "alchemy_tune.languages.codes.to_uriel")


def mapping_note(iso: str, table: UrielPlusTable | None = None) -> str | None:
    """Why an ISO code gets another language's URIEL+ row (a macro-language), or None."""
    table = table or UrielPlusTable.load()
    if iso in table._iso_glotto or iso not in MACRO_MEMBERS:
        return None
    member = MACRO_MEMBERS[iso]
    return (f"URIEL+ has no Glottocode for the macro-language '{iso}': uses its member '{member}' "
            f"({table.glottocode(iso)})")


MEMO: ProcessMemo[UrielPlusTable] = ProcessMemo()
"""This process's table (``MEMO.forget()`` makes the next load read the cache file again)."""


# --------------------------------------------------------------------- building the cache
def integrated():
    """A ``URIELPlus`` object with every database integrated, built without writing into its package.

    ``URIELPlus()`` first copies its archives from ``database/original_uriel/`` into ``database/`` of the
    installed package (a write into site-packages, which fails on a read-only install) and loads them with
    ``allow_pickle=True``. This does the same set-up from ``original_uriel/`` directly, reading without
    pickle (the archives hold only numeric and text arrays), then runs the package's own integration.
    Tied to urielplus 1.3.2 (pinned in pyproject.toml).
    """
    import logging

    from urielplus import urielplus as up

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))  # the package logs at INFO
    u = up.URIELPlus.__new__(up.URIELPlus)
    u.files = ["family_features.npz", "features.npz", "geocoord_features.npz", "script_features.npz"]
    u.cur_dir = str(Path(up.__file__).parent)
    originals = Path(u.cur_dir) / "database" / "original_uriel"
    u.loaded_features = []
    for name in u.files:
        with np.load(originals / name, allow_pickle=False) as npz:
            u.loaded_features.append({key: npz[key] for key in npz.files})
    feats, langs, data, sources = ([m[k] for m in u.loaded_features] for k in ("feats", "langs", "data", "sources"))
    u.feats, u.langs, u.data, u.sources = feats, langs, data, sources
    super(up.URIELPlus, u).__init__(feats, langs, data, sources)
    u.databases = u.imputation = u.querying = u
    u._refresh_indexes()
    u.integrate_databases()
    return u


def build_arrays(u=None) -> dict[str, np.ndarray]:
    """The cache's arrays, from an integrated URIEL+ object (built here when not given)."""
    u = integrated() if u is None else u
    glottocodes = np.sort(u.langs[1])
    out: dict[str, np.ndarray] = {"format": np.asarray(_FORMAT), "glottocodes": glottocodes}
    orders = []
    for index in range(4):
        order = np.argsort(u.langs[index])
        if not np.array_equal(u.langs[index][order], glottocodes):
            raise RuntimeError(f"urielplus data: matrix {index} holds other languages than the typological one")
        orders.append(order)
    for s, (matrix, prefix) in _SETS.items():
        columns = np.flatnonzero(np.char.startswith(u.feats[matrix], prefix))
        out[f"columns/{s}"] = columns
        out[f"names/{s}"] = u.feats[matrix][columns]
    out["data/typological"] = _aggregate_union(u.data[1], orders[1]).astype(np.int8)
    out["data/geographic"] = _single_source(u.data[2], orders[2]).astype(np.float32)
    out["data/script"] = _single_source(u.data[3], orders[3]).astype(np.int8)
    genetic = _single_source(u.data[0], orders[0])
    out["data/genetic_bits"] = np.packbits(genetic == 1, axis=1)
    out["data/genetic_known"] = np.packbits(genetic != _MISSING, axis=1)
    for name in ("data/typological", "data/script"):
        if not np.isin(out[name], (-1, 0, 1)).all():
            raise RuntimeError(f"urielplus data: {name} is expected to hold only -1, 0 and 1")
    if not np.isin(genetic, (-1, 0, 1)).all():
        raise RuntimeError("urielplus data: the phylogeny matrix is expected to hold only -1, 0 and 1")
    iso, glotto = _iso_map(Path(u.cur_dir), set(glottocodes.tolist()))
    out["iso"], out["iso_glotto"] = np.asarray(iso), np.asarray(glotto)
    return out


def _known(values: np.ndarray) -> np.ndarray:
    return (values != _MISSING) & np.isfinite(values)


def _aggregate_union(data: np.ndarray, order: np.ndarray) -> np.ndarray:
    """URIEL+'s 'U' aggregation over sources (``get_vector``): the largest known value, -1 if none."""
    out = np.empty(data.shape[:2], np.float64)
    for start in range(0, len(order), _CHUNK):
        block = data[order[start:start + _CHUNK]]
        known = _known(block)
        best = np.where(known, block, -np.inf).max(axis=2)
        out[start:start + _CHUNK] = np.where(known.any(axis=2), best, _MISSING)
    return out


def _single_source(data: np.ndarray, order: np.ndarray) -> np.ndarray:
    if data.shape[2] != 1:
        raise RuntimeError(f"urielplus data: expected one source, found {data.shape[2]}")
    values = data[order][:, :, 0].astype(np.float64)
    return np.where(np.isfinite(values), values, _MISSING)


def _iso_map(package: Path, present: set[str]) -> tuple[list[str], list[str]]:
    path = package / "database" / "urielplus_csvs" / "uriel_glottocode_map.csv"
    iso, glotto = [], []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            code, g = row["iso_code"].strip(), row["glottocode"].strip()
            if code and g in present:
                iso.append(code)
                glotto.append(g)
    return iso, glotto
