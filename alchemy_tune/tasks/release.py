"""Shared plumbing of the paper's benchmark loaders: release files, the hub, languages, sizes.

Each benchmark (``massive``, ``masakhanews``, ``semrel``) reads either the dataset's own release files
from ``--data-dir`` or the Hugging Face hub. Both roads end in the same per-split, per-language lists of
rows, so everything after parsing (label indexing, sizes, URIEL codes) is written once, here. Which
languages a load uses is decided by the task registry (``alchemy_tune.tasks.resolve_languages``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, NamedTuple, Sequence
from urllib.parse import urlparse

from alchemy_tune.core.errors import UsageError
from alchemy_tune.tasks.base import Example, Task, TaskKind, TaskOptions, take_nested
from alchemy_tune.tasks.subsets import take_evaluation

HUB_PROBE_SECONDS = 5.0
"""How long to wait for a TCP connection to the hub before saying it cannot be reached."""

# Hub split names differ between datasets; ours are train/dev/test.
HUB_SPLIT_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "dev": ("validation", "dev"),
    "test": ("test",),
}

# Whole news articles sit in one field; the csv module's default cap (128 KiB) is not a property of the data.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class Row(NamedTuple):
    """One raw record and where it came from (``file:line`` or a hub split), for error messages."""

    where: str
    values: Mapping[str, Any]


# --------------------------------------------------------------------------- languages
def uriel_mapping(languages: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Dataset code -> lang2vec code for every language, plus one note per code that needed a fallback."""
    from alchemy_tune.languages.codes import mapping_note, to_uriel

    codes: dict[str, str] = {}
    notes: list[str] = []
    for lang in languages:
        codes[lang] = to_uriel(lang)
        note = mapping_note(lang)
        if note:
            notes.append(note)
    return codes, notes


# --------------------------------------------------------------------------- release files
def require_dir(task: str, data_dir: str) -> Path:
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise UsageError(f"data-dir: {str(root)!r} is not a folder; expected the {task} release files")
    return root


def find_data_dir(
    task: str, data_dir: str, langs: Sequence[str], file_of: Callable[[str], str], what: str, expected: str,
    nested: bool = False,
) -> Path:
    """The folder of a release's per-language files: ``data_dir`` itself or its ``data/`` (with ``nested``,
    also any ``*/data/``), the first holding ``file_of(lang)`` for one of ``langs``; else a UsageError
    saying ``no {task} {what}`` there and ``expected`` instead."""
    root = require_dir(task, data_dir)
    candidates = [root, root / "data"]
    if nested:
        candidates += sorted(p / "data" for p in root.iterdir() if p.is_dir())
    for folder in candidates:
        if any((folder / file_of(lang)).is_file() for lang in langs):
            return folder
    raise UsageError(f"data-dir: no {task} {what} under {str(root)!r}; expected {expected}")


def read_jsonl(path: Path, required: Sequence[str], *, cache: bool = True) -> list[Row]:
    """Rows of a JSON-lines file; a malformed line or a missing field is a UsageError naming the line.

    With ``cache``, the ``required`` fields of a file that parsed cleanly are kept in the artefact cache,
    keyed by the file's path, size and modification time: every trial loads the task again, and parsing
    MASSIVE's 52 files line by line costs several times more than reading one compact array per file.
    """
    memo = _jsonl_memo_path(path, required) if cache else None
    if memo is not None and memo.is_file():
        try:
            packed = json.loads(memo.read_text(encoding="utf-8"))
            return [Row(f"{path}:{item[0]}", dict(zip(required, item[1:]))) for item in packed]
        except (OSError, ValueError, TypeError):
            pass  # a damaged memo is rebuilt below
    rows = _parse_jsonl(path, required)
    if memo is not None:
        from alchemy_tune.core.cache import atomic_file

        packed = [[int(row.where.rsplit(":", 1)[1])] + [row.values[k] for k in required] for row in rows]
        with contextlib.suppress(OSError):
            with atomic_file(memo, "w") as handle:
                json.dump(packed, handle, ensure_ascii=False)
    return rows


def _jsonl_memo_path(path: Path, required: Sequence[str]) -> Path | None:
    from alchemy_tune.core.cache import cache_dir

    try:
        stat = path.stat()
    except OSError:
        return None
    key = "\x1f".join(["jsonl-v1", str(path.resolve()), str(stat.st_size), str(stat.st_mtime_ns),
                       str(stat.st_ino), *required])
    return cache_dir() / "release-files" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def _parse_jsonl(path: Path, required: Sequence[str]) -> list[Row]:
    rows = []
    with open(path, encoding="utf-8-sig", errors="strict") as handle:
        lines = _decoded_lines(handle, path)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise UsageError(
                    f"{where}: malformed JSON line ({err.msg}); expected one JSON object per line"
                )
            if not isinstance(record, dict):
                raise UsageError(f"{where}: expected a JSON object, got {type(record).__name__}")
            missing = [name for name in required if name not in record]
            if missing:
                raise UsageError(
                    f"{where}: missing field(s) {', '.join(missing)}; expected fields {', '.join(required)}"
                )
            # Keep only what is read: a MASSIVE locale has ~16k lines, most of their bytes in judgments.
            rows.append(Row(where, {name: record[name] for name in required}))
    return rows


def _decoded_lines(handle: Any, path: Path) -> list[str]:
    try:
        return handle.readlines()
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); expected JSON lines")


def read_table(
    path: Path, delimiter: str, required: Sequence[str], *, ignore_case: bool = False
) -> list[Row]:
    """Rows of a CSV/TSV file with a header, quoted as pandas writes them (fields may hold newlines).

    With ``ignore_case`` the header is matched case-insensitively and rows are keyed by the names in
    ``required`` (SemRel's releases spell the score column both ``Score`` and ``score``).
    """
    kind = "tab-separated" if delimiter == "\t" else "comma-separated"
    try:
        return _read_table(path, delimiter, required, ignore_case)
    except (csv.Error, UnicodeDecodeError) as err:
        raise UsageError(
            f"{path}: unreadable as UTF-8 {kind} values ({err}); expected columns {', '.join(required)}"
        )


def _read_table(path: Path, delimiter: str, required: Sequence[str], ignore_case: bool) -> list[Row]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise UsageError(f"{path}: empty file; expected a header with columns {', '.join(required)}")
        header = [h.strip() for h in header]
        lookup = {(h.lower() if ignore_case else h): i for i, h in enumerate(header)}
        keys = [(name.lower() if ignore_case else name) for name in required]
        missing = [name for name, key in zip(required, keys) if key not in lookup]
        if missing:
            raise UsageError(
                f"{path}: expected columns {', '.join(required)} (missing {', '.join(missing)}), "
                f"found {', '.join(header) or 'none'}"
            )
        rows = []
        while True:
            start = reader.line_num + 1  # a quoted field may span lines: name the record's first line
            record = next(reader, None)
            if record is None:
                break
            if not any(cell.strip() for cell in record):
                continue
            where = f"{path}:{start}"
            if len(record) != len(header):
                raise UsageError(
                    f"{where}: {len(record)} fields where the header has {len(header)}; "
                    f"expected {delimiter!r}-separated columns {', '.join(header)}"
                )
            rows.append(Row(where, {name: record[lookup[key]] for name, key in zip(required, keys)}))
    return rows


def read_language_folders(task: str, folder: Path, seen: Sequence[str], unseen: Sequence[str],
                          split_files: Mapping[str, str], columns: Sequence[str], shown: str) -> dict:
    """lang -> split -> (file, rows) of a release laid out as ``<lang>/<split file>`` TSVs (MasakhaNEWS,
    SIB-200); held-out languages have no training rows. A missing file is a UsageError naming it and
    ``shown`` (the columns the file should have)."""
    out: dict = {}
    for lang in tuple(seen) + tuple(unseen):
        out[lang] = {}
        for split, name in split_files.items():
            if split == "train" and lang not in seen:
                out[lang][split] = ("", [])
                continue
            path = folder / lang / name
            if not path.is_file():
                raise UsageError(f"{path}: missing; expected the {task} {split} split of {lang} "
                                 f"(tab-separated, columns {shown})")
            out[lang][split] = (str(path), read_table(path, "\t", columns))
    return out


def check_fields(rows: Sequence[Row], required: Sequence[str], source: str) -> None:
    """Hub rows carry no line numbers of their own; check their fields once, naming the config."""
    for row in rows[:1]:
        missing = [name for name in required if name not in row.values]
        if missing:
            raise UsageError(
                f"{source}: missing field(s) {', '.join(missing)}; expected fields {', '.join(required)}"
            )


def first_existing(candidates: Sequence[Path]) -> Path | None:
    return next((path for path in candidates if path.is_file()), None)


# --------------------------------------------------------------------------- the hub
_planning = False


@contextlib.contextmanager
def planning():
    """A dry run (``plan``, ``--dry-run``): nothing is fetched from the hub; a run would."""
    global _planning
    before, _planning = _planning, True
    try:
        yield
    finally:
        _planning = before


def hub_offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _unreachable(repo: str, why: str) -> UsageError:
    return UsageError(
        f"{repo}: cannot reach the Hugging Face hub ({why}); pass --data-dir with the release files"
    )


def check_hub(repo: str, timeout: float = HUB_PROBE_SECONDS) -> None:
    """Fail fast when the hub is unreachable, instead of waiting out ``datasets``' retries.

    In offline mode (``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``) nothing is probed: ``datasets`` then
    serves its local cache, and a miss becomes the same UsageError in :func:`load_hub`.
    """
    if hub_offline():
        return
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # behind a proxy a direct connection proves nothing; datasets goes through the proxy
    url = urlparse(hub_endpoint())
    host, port = url.hostname or "", url.port or (80 if url.scheme == "http" else 443)
    outcome: list[str] = []

    def probe() -> None:
        # getaddrinfo ignores socket timeouts, hence the thread with a bounded join.
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append("")
        except OSError as err:
            outcome.append(f"{host}:{port}: {err.strerror or err}")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    if not outcome:
        raise _unreachable(repo, f"no answer from {host}:{port} within {timeout:g} s")
    if outcome[0]:
        raise _unreachable(repo, outcome[0])


def hub_rows(dataset: Any, where: str) -> list[Row]:
    """Rows of a ``datasets.Dataset`` with class-label columns turned back into their names."""
    from datasets import ClassLabel

    names = {col: feat for col, feat in dataset.features.items() if isinstance(feat, ClassLabel)}
    rows = []
    for i, record in enumerate(dataset.to_list()):
        for col, feat in names.items():
            if isinstance(record.get(col), int) and record[col] >= 0:
                record[col] = feat.int2str(record[col])
        rows.append(Row(f"{where}[{i}]", record))
    return rows


def load_hub(repo: str, config: str, splits: Sequence[str]) -> dict[str, list[Row] | None]:
    """Our splits (train/dev/test) of one hub config; a split the config lacks maps to None."""
    if _planning:
        raise UsageError(f"{repo}: not loaded by a plan, which opens no network connection; a run downloads it "
                         "from the Hugging Face hub (or pass --data-dir with the release files)")
    check_hub(repo)
    import datasets

    def load(**extra: Any) -> Any:
        return datasets.load_dataset(repo, config, **extra)

    try:
        try:
            loaded = load()
        except RuntimeError as err:
            if "scripts are no longer supported" not in str(err):
                raise
            # Script-based repos (MASSIVE, MasakhaNews) keep an automatic Parquet export.
            loaded = load(revision="refs/convert/parquet")
    except UsageError:
        raise
    except (ConnectionError, TimeoutError, OSError) as err:
        raise _unreachable(repo, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    except Exception as err:  # noqa: BLE001 - datasets raises many types; each becomes one line
        first = str(err).splitlines()[0] if str(err) else ""
        raise UsageError(
            f"{repo} config {config!r}: could not load from the Hugging Face hub ({type(err).__name__}: "
            f"{first}); pass --data-dir with the release files"
        )
    out: dict[str, list[Row] | None] = {}
    for split in splits:
        name = next((n for n in HUB_SPLIT_NAMES[split] if n in loaded), None)
        out[split] = None if name is None else hub_rows(loaded[name], f"hub {repo}[{config}]/{name}")
    return out


# --------------------------------------------------------------------------- building the task
Parsed = Mapping[str, Mapping[str, list[tuple[Row, str, str | None, Any]]]]
"""split -> language -> (row, text, text_pair, label name or score) in file order."""


def select_sizes(
    data: Mapping[str, Mapping[str, list]], options: TaskOptions, seen: Sequence[str],
    key: Callable[[Any], str], stratum: Callable[[Any], Hashable],
) -> dict:
    """Training lists of the seen languages cut to nested subsets; dev/test lists to stratified,
    file-order-blind subsets (:mod:`.subsets`), keyed by ``key`` and stratified by ``stratum``."""
    seed = options.seed
    memo: dict[str, int] = {}  # key hashes, shared by the languages of a parallel dataset
    sizes = {"dev": options.dev_size, "test": options.test_size}
    return {
        "train": {lang: take_nested(data["train"][lang], options.size_of(lang), seed, lang) for lang in seen},
        **{split: {lang: take_evaluation(items, n, key, stratum, salt=split, memo=memo)
                   for lang, items in data[split].items()}
           for split, n in sizes.items()},
    }


def content_key(item: tuple[Row, str, str | None, Any]) -> str:
    """A parsed row's identity by content, for datasets without ids shared across languages."""
    return f"{item[1]}\x1f{item[2] or ''}"


def index_labels(
    parsed: Parsed, labels: Sequence[str], options: TaskOptions, seen: Sequence[str], what: str = "label",
    key: Callable[[Any], str] = content_key,
) -> dict[str, dict[str, list[Example]]]:
    """Examples with label indices of ``labels``, cut to the option sizes (dev/test stratified by label,
    keyed by ``key``: a parallel dataset passes its shared id).

    Every row is checked (an unknown name is a UsageError naming its row), but only the rows kept by
    the sizes become examples: a full MASSIVE load has ~860k rows and a search trial may keep 20k.
    """
    index = {name: i for i, name in enumerate(labels)}
    for split, by_lang in parsed.items():
        for items in by_lang.values():
            for row, _, _, label in items:
                if label not in index:
                    shown = ", ".join(labels[:8]) + (", ..." if len(labels) > 8 else "")
                    raise UsageError(
                        f"{row.where}: {what} {label!r} ({split}) is not one of the {len(labels)} "
                        f"training {what}s ({shown})"
                    )
    return {
        split: {
            lang: [Example(text=text, label=index[label], text_pair=pair) for _, text, pair, label in items]
            for lang, items in by_lang.items()
        }
        for split, by_lang in select_sizes(parsed, options, seen, key, lambda item: item[3]).items()
    }


def build_task(
    name: str,
    kind: TaskKind,
    labels: Sequence[str],
    seen: Sequence[str],
    unseen: Sequence[str],
    examples: Mapping[str, Mapping[str, list[Example]]],
    notes: list[str],
) -> Task:
    """The Task of already-sized examples, with every language's URIEL code and the mapping notes first."""
    uriel, code_notes = uriel_mapping(tuple(seen) + tuple(unseen))
    return Task(
        name=name, kind=kind, labels=tuple(labels), seen=tuple(seen), unseen=tuple(unseen),
        uriel_codes=uriel, train=dict(examples["train"]), dev=dict(examples["dev"]),
        test=dict(examples["test"]), notes=code_notes + notes,
    )


def require_rows(task: str, lang: str, split: str, source: str, items: Sequence[Any], expected: str) -> None:
    """An empty language after parsing/filtering is an error, not a silent gap in the averages."""
    if not items:
        raise UsageError(
            f"{source}: no usable {split} examples for {task} language {lang}; expected {expected}"
        )
