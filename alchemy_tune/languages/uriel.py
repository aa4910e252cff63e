"""URIEL language vectors, read from lang2vec's bundled data files without importing lang2vec.

``lang2vec.lang2vec`` needs ``pkg_resources`` at import time and reloads a whole archive on every
``get_features`` call (seconds for ``fam``). This module reads the same ``.npz`` archives once with
``numpy.load(allow_pickle=False)``, reproduces how ``get_features`` derives each feature set, and keeps
the result as one compact cache file, so a trial gets its vectors in milliseconds.

Derivation (as in ``lang2vec.lang2vec.get_named_set``): a typological set is the columns of one source
whose names start with the set's prefix (``S_`` syntax, ``P_`` phonology, ``INV_`` inventory) in
``features.npz`` (WALS, SSWL, Ethnologue, PHOIBLE sources), ``feature_averages.npz`` (``*_average``) or
``feature_predictions.npz`` (``*_knn``); ``fam`` and ``geo`` are ``family_features.npz`` and
``geocoord_features.npz``; ``id`` is a one-hot over the languages of ``family_features.npz`` in that file's
order. ``-1`` marks a missing value (lang2vec prints it as ``'--'``).

``learned`` is left out on purpose: ``learned.npy`` is a pickled dict of object arrays. Reading it needs
``allow_pickle=True``, which runs code from the file; lang2vec itself cannot read it under numpy 2, and it
covers only 1,017 languages.

Languages: every code the archives hold (7,970, what ``get_features`` accepts). ``lang2vec.LANGUAGES``
(4,005) is smaller only because ``available_uriel_languages`` masks along the wrong axis and keeps the first
3,718 rows of ``family_features.npz``, an arbitrary subset; macro-language codes such as ``ara``, ``fas``,
``swa``, ``zho`` are missing from that list but present, with data, in every archive.

Missing values (``missing=``):

- ``zero``: missing -> 0, as the paper did.
- ``mean``: missing -> the mean of that dimension over all 7,970 languages that have a value (0 if none).
- ``knn``: for a typological set (``syntax_*``, ``phonology_*``, ``inventory_*``) a missing cell takes
  lang2vec's kNN prediction for the same feature and language (``feature_predictions.npz``, the data of
  ``syntax_knn``/``phonology_knn``/``inventory_knn``, which has no missing cell). Anything still missing
  (no set has such cells in lang2vec 1.1.2: ``fam``, ``id``, ``geo`` and the ``*_knn`` sets are complete)
  falls back to ``mean``.
"""

from __future__ import annotations

import difflib
import fcntl
import importlib.metadata
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from alchemy_tune.core.cache import ProcessMemo, atomic_file, cache_dir
from alchemy_tune.core.errors import UsageError

# lang2vec's own table: set -> (archive, source, feature-name prefix); 'learned' left out (see above).
_SOURCES: dict[str, tuple[str, str, str]] = {
    "syntax_wals": ("features.npz", "WALS", "S_"),
    "phonology_wals": ("features.npz", "WALS", "P_"),
    "syntax_sswl": ("features.npz", "SSWL", "S_"),
    "syntax_ethnologue": ("features.npz", "ETHNO", "S_"),
    "phonology_ethnologue": ("features.npz", "ETHNO", "P_"),
    "inventory_ethnologue": ("features.npz", "ETHNO", "INV_"),
    "inventory_phoible_aa": ("features.npz", "PHOIBLE_AA", "INV_"),
    "inventory_phoible_gm": ("features.npz", "PHOIBLE_GM", "INV_"),
    "inventory_phoible_saphon": ("features.npz", "PHOIBLE_SAPHON", "INV_"),
    "inventory_phoible_spa": ("features.npz", "PHOIBLE_SPA", "INV_"),
    "inventory_phoible_ph": ("features.npz", "PHOIBLE_PH", "INV_"),
    "inventory_phoible_ra": ("features.npz", "PHOIBLE_RA", "INV_"),
    "inventory_phoible_upsid": ("features.npz", "PHOIBLE_UPSID", "INV_"),
    "syntax_knn": ("feature_predictions.npz", "predicted", "S_"),
    "phonology_knn": ("feature_predictions.npz", "predicted", "P_"),
    "inventory_knn": ("feature_predictions.npz", "predicted", "INV_"),
    "syntax_average": ("feature_averages.npz", "avg", "S_"),
    "phonology_average": ("feature_averages.npz", "avg", "P_"),
    "inventory_average": ("feature_averages.npz", "avg", "INV_"),
    "fam": ("family_features.npz", "FAM", ""),
    "id": ("family_features.npz", "ID", ""),
    "geo": ("geocoord_features.npz", "GEOCOORDS", ""),
}
FEATURE_SETS: tuple[str, ...] = tuple(_SOURCES)
MISSING_POLICIES: tuple[str, ...] = ("zero", "mean", "knn")
# The kNN-predicted set that fills a typological set's gaps under missing="knn".
_KNN_OF_PREFIX = {"S_": "syntax_knn", "P_": "phonology_knn", "INV_": "inventory_knn"}

_L2V_VERSION = importlib.metadata.version("lang2vec")
# Bump when the cache layout changes, so an old file is rebuilt instead of misread.
_FORMAT = 1
_MISSING = -1.0


def lang2vec_data_dir() -> Path:
    """lang2vec's bundled data folder, found through the installed distribution's file list.

    Not ``importlib.resources.files("lang2vec")``: lang2vec also installs a ``lang2vec.py`` script into the
    environment's bin/, which shadows the package whenever a console script (``alchemy-tune``) runs.
    """
    dist = importlib.metadata.distribution("lang2vec")
    for f in dist.files or ():
        if f.name == "features.npz" and f.parent.name == "data":
            return Path(dist.locate_file(f)).parent
    raise FileNotFoundError("lang2vec is installed without its data/features.npz")


def cache_path() -> Path:
    return cache_dir() / f"uriel-lang2vec-{_L2V_VERSION}.npz"


def parse_feature_spec(spec: str) -> tuple[str, ...]:
    """Split ``'syntax_knn+syntax_average+geo'`` into validated set names, in order.

    Example:
        >>> parse_feature_spec("syntax_knn+geo")
        ('syntax_knn', 'geo')
    """
    for part in str(spec).split("+"):
        if part.strip().lower() == "learned":
            raise UsageError("uriel feature set 'learned' is not supported: lang2vec stores it as a pickled "
                             f"object array, which is never unpickled here; valid: {', '.join(FEATURE_SETS)}")
    return split_spec(spec, FEATURE_SETS, "syntax_knn+syntax_average+geo", "is unknown; ", "valid: ")


def split_spec(spec: str, valid: Sequence[str], example: str, unknown: str, valid_label: str) -> tuple[str, ...]:
    """``spec`` split on '+' into set names of ``valid``: one line naming the bad part and the valid sets."""
    if not isinstance(spec, str) or not spec.strip("+ "):
        raise UsageError(f"uriel feature spec: empty or not text ({spec!r}); give '+'-joined sets such as "
                         f"{example}")
    parts = tuple(part.strip().lower() for part in spec.split("+"))
    for part in parts:
        if part not in valid:
            close = difflib.get_close_matches(part, valid, n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise UsageError(f"uriel feature set {part!r} in {spec!r} {unknown}{hint}"
                             f"{valid_label}{', '.join(valid)} (joined with '+')")
    if len(set(parts)) != len(parts):
        dup = sorted({p for p in parts if parts.count(p) > 1})
        raise UsageError(f"uriel feature spec {spec!r} names {', '.join(dup)} more than once")
    return parts


class VectorTable:
    """Language vectors by named feature set, with missing-value policies; one subclass per source.

    A subclass sets ``languages`` (the codes it answers for), ``_names`` (set -> column names) and
    implements ``_parse`` (spec -> validated set names), ``_row_of`` (code -> row, or None) and ``_raw``
    (set, rows -> float32 values with -1 where missing). The policies (``zero``, ``mean``, and ``knn``
    where the source has kNN predictions, see ``_knn_set``) are applied here, the same for every source.
    """

    source = "?"
    missing_policies: tuple[str, ...] = ("zero", "mean")
    languages: tuple[str, ...] = ()
    _names: dict[str, np.ndarray]

    def __init__(self) -> None:
        self._means: dict[str, np.ndarray] = {}

    def __contains__(self, lang: object) -> bool:
        return isinstance(lang, str) and self._row_of(lang) is not None

    def dim(self, spec: str) -> int:
        return sum(len(self._names[s]) for s in self._parse(spec))

    def feature_names(self, spec: str) -> list[str]:
        return [str(n) for s in self._parse(spec) for n in self._names[s]]

    def vectors(self, spec: str, langs: Sequence[str], missing: str = "zero") -> np.ndarray:
        """float32 ``[len(langs), dim(spec)]``: the sets concatenated in spec order, gaps filled by policy."""
        sets = self._parse(spec)
        if missing not in self.missing_policies:
            raise UsageError(f"missing: unknown policy {missing!r} for the {self.source} source; "
                             f"valid: {', '.join(self.missing_policies)}")
        rows = self._rows(langs)
        blocks = []
        for s in sets:
            block = self._raw(s, rows)
            gaps = block == _MISSING
            if gaps.any():
                knn = self._knn_set(s) if missing == "knn" else None
                if knn is not None:
                    block = np.where(gaps, self._raw(knn, rows), block)
                    gaps = block == _MISSING
                fill = self._mean(s) if missing in ("mean", "knn") else np.zeros(block.shape[1], np.float32)
                block = np.where(gaps, fill[None, :], block)
            blocks.append(block)
        return np.concatenate(blocks, axis=1)

    def observed(self, spec: str, langs: Sequence[str]) -> np.ndarray:
        """bool ``[len(langs), dim(spec)]``: which cells of :meth:`vectors` hold a real (not missing) value."""
        rows = self._rows(langs)
        return np.concatenate([self._raw(s, rows) != _MISSING for s in self._parse(spec)], axis=1)

    def coverage(self, spec: str, langs: Sequence[str]) -> dict[str, float]:
        """Per language: the fraction of the spec's dimensions holding a real (not missing) value."""
        sets = self._parse(spec)
        langs = list(langs) if not isinstance(langs, str) else langs
        rows = self._rows(langs)
        total = sum(len(self._names[s]) for s in sets)
        present = np.zeros(len(rows), dtype=np.int64)
        for s in sets:
            present += (self._raw(s, rows) != _MISSING).sum(axis=1)
        return {lang: float(present[i]) / total for i, lang in enumerate(langs)}

    # ----------------------------------------------------------------- for subclasses
    def _parse(self, spec: str) -> tuple[str, ...]:
        raise NotImplementedError

    def _row_of(self, lang: str) -> int | None:
        raise NotImplementedError

    def _raw(self, s: str, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _knn_set(self, s: str) -> str | None:
        """The set of kNN predictions that fills ``s``'s gaps under ``missing='knn'``; None = none."""
        return None

    def _n_rows(self) -> int:
        return len(self.languages)

    # ----------------------------------------------------------------- shared internals
    def _rows(self, langs: Sequence[str]) -> np.ndarray:
        if isinstance(langs, str):
            raise UsageError(f"languages: expected a list of codes, got the string {langs!r}")
        rows = []
        for lang in langs:
            row = self._row_of(lang) if isinstance(lang, str) else None
            if row is None:
                raise UsageError(self._unknown(lang))
            rows.append(row)
        return np.asarray(rows, dtype=np.int64)

    def _unknown(self, lang: object) -> str:
        return _unknown_language_message(lang, self.languages)

    def _mean(self, s: str) -> np.ndarray:
        """Per column: the mean over every row of the source that has a value (0 where none has)."""
        if s not in self._means:
            values = self._raw(s, np.arange(self._n_rows())).astype(np.float64)
            have = values != _MISSING
            count = have.sum(axis=0)
            total = np.where(have, values, 0.0).sum(axis=0)
            self._means[s] = np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)
        return self._means[s]


class UrielTable(VectorTable):
    """Every lang2vec feature set for every lang2vec language, with missing-value policies.

    Example:
        >>> table = UrielTable.load()
        >>> table.vectors("syntax_knn+syntax_average+geo", ["eng", "swh"]).shape
        (2, 505)
    """

    source = "lang2vec"
    missing_policies = MISSING_POLICIES

    def __init__(self, arrays: dict[str, np.ndarray]):
        super().__init__()
        self.languages: tuple[str, ...] = tuple(arrays["languages"].tolist())
        self._row = {lang: i for i, lang in enumerate(self.languages)}
        self._names = {s: arrays[f"names/{s}"] for s in FEATURE_SETS if s != "id"}
        self._data = {s: arrays[f"data/{s}"] for s in FEATURE_SETS if s != "id"}
        # id: column = position of the language in family_features.npz (lang2vec's order, not sorted).
        id_order = arrays["id_order"]
        self._id_column = np.empty(len(self.languages), dtype=np.int64)
        self._id_column[[self._row[lang] for lang in id_order.tolist()]] = np.arange(len(id_order))
        self._names["id"] = np.char.add("ID_", np.char.upper(id_order))

    @classmethod
    def load(cls) -> "UrielTable":
        """The table of this process: read from the cache file, built from lang2vec's data if absent."""
        return MEMO.get(lambda: cls(read_or_build(cache_path(), _FORMAT, _build_arrays)))

    def feature_names(self, spec: str) -> list[str]:
        """Column names, as ``lang2vec.get_features(..., header=True)['CODE']`` gives them."""
        return super().feature_names(spec)

    def _parse(self, spec: str) -> tuple[str, ...]:
        return parse_feature_spec(spec)

    def _row_of(self, lang: str) -> int | None:
        return self._row.get(lang)

    def _knn_set(self, s: str) -> str | None:
        return _KNN_OF_PREFIX[_PREFIX_OF[s]] if s in _PREFIX_OF else None

    def _raw(self, s: str, rows: np.ndarray) -> np.ndarray:
        """float32 values of set ``s`` for ``rows``, -1 where missing."""
        if s == "id":
            out = np.zeros((len(rows), len(self._names["id"])), np.float32)
            out[np.arange(len(rows)), self._id_column[rows]] = 1.0
            return out
        data = self._data[s][rows]
        if s == "fam":
            return np.unpackbits(data, axis=1, count=len(self._names["fam"])).astype(np.float32)
        return data.astype(np.float32)


_PREFIX_OF = {s: prefix for s, (_, _, prefix) in _SOURCES.items() if prefix}
MEMO: ProcessMemo[UrielTable] = ProcessMemo()
"""This process's table (``MEMO.forget()`` makes the next load read the cache file again)."""


def _unknown_language_message(lang: object, languages: Sequence[str]) -> str:
    text = str(lang)
    close = difflib.get_close_matches(text.lower(), languages, n=5, cutoff=0.6)
    hint = f"close codes: {', '.join(close)}; " if close else ""
    return (f"language {text!r} is not in lang2vec's URIEL table ({len(languages)} ISO 639-3 codes); {hint}"
            "dataset codes and locales are mapped with alchemy_tune.languages.codes.to_uriel")


def read_or_build(path: Path, fmt: int, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays of a cache file of layout ``fmt``; built with ``build`` and written atomically if absent,
    unreadable or of another layout. Concurrent builders (trials starting together on one node) wait for
    the first one through a lock file instead of each building the same table."""
    arrays = _read(path, fmt)
    if arrays is not None:
        return arrays
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_suffix(".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        arrays = _read(path, fmt)  # another process may have built it while this one waited
        if arrays is None:
            arrays = build()
            with atomic_file(path) as handle:
                # Uncompressed: loading is a plain read, several times faster than inflating.
                np.savez(handle, **arrays)
        # Waiters hold the same (now unlinked) file and find the table once they get the lock.
        lock_path.unlink(missing_ok=True)
    return arrays


def _read(path: Path, fmt: int) -> dict[str, np.ndarray] | None:
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as npz:
                if int(npz["format"]) == fmt:
                    return {key: npz[key] for key in npz.files}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # unreadable or from another layout: rebuilt
    return None


def _build_arrays() -> dict[str, np.ndarray]:
    """Derive every set from lang2vec's archives, rows in sorted language order, compact dtypes."""
    data_dir = lang2vec_data_dir()
    archives: dict[str, dict[str, np.ndarray]] = {}
    for name in sorted({archive for archive, _, _ in _SOURCES.values()}):
        with np.load(data_dir / name, allow_pickle=False) as npz:
            archives[name] = {key: npz[key] for key in ("langs", "feats", "sources", "data")}
    languages = np.sort(archives["features.npz"]["langs"])
    out: dict[str, np.ndarray] = {"format": np.asarray(_FORMAT), "languages": languages}
    orders = {}
    for name, arch in archives.items():
        orders[name] = np.argsort(arch["langs"])  # archive rows -> sorted language order
        if not np.array_equal(arch["langs"][orders[name]], languages):
            raise RuntimeError(f"lang2vec data: {name} holds other languages than features.npz")
    for s, (name, source, prefix) in _SOURCES.items():
        arch = archives[name]
        if s == "id":
            out["id_order"] = arch["langs"]
            continue
        columns = np.flatnonzero(np.char.startswith(arch["feats"], prefix))
        (source_index,) = np.flatnonzero(arch["sources"] == source)
        values = arch["data"][:, :, source_index][orders[name]]
        if len(columns) < values.shape[1]:
            values = values[:, columns]
        out[f"names/{s}"] = np.char.replace(arch["feats"][columns], " ", "_")
        out[f"data/{s}"] = _compact(s, values)
    for s, prefix in _PREFIX_OF.items():
        # kNN filling pairs columns by position: both sets must list the same features in the same order.
        if not np.array_equal(out[f"names/{s}"], out[f"names/{_KNN_OF_PREFIX[prefix]}"]):
            raise RuntimeError(f"lang2vec data: {s} and {_KNN_OF_PREFIX[prefix]} list different features")
    return out


def _compact(s: str, values: np.ndarray) -> np.ndarray:
    """The smallest dtype that holds ``values`` exactly (checked), so the cache loads fast."""
    if s == "fam":
        if not ((values == 0) | (values == 1)).all():
            raise RuntimeError("lang2vec data: fam is expected to be 0/1")
        return np.packbits(values.astype(np.uint8), axis=1)
    if ((values == -1) | (values == 0) | (values == 1)).all():
        return values.astype(np.int8)
    # feature_averages.npz is float64 (0.3333, ...); vectors are float32, so nothing is lost for them.
    return values.astype(np.float32)
