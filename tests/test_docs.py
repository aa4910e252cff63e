"""The documentation: a short README, no development history, links that resolve, and the results schema in
docs/results.md equal to the one the code declares. Fast: no Ray, no torch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# docs/study/ is a generated report (trial ids are hex there), so only the pages directly under docs/
PAGES = sorted([README, *(ROOT / "docs").glob("*.md"), *[p for p in [ROOT / "CHANGELOG.md"] if p.exists()]])
PAGE_IDS = [str(p.relative_to(ROOT)) for p in PAGES]

# spans in backticks or parentheses, and in them a lowercase hex token of 7-40 characters
BACKTICKS = re.compile(r"`([^`\n]*)`")
PARENTHESES = re.compile(r"\(([^()\n]*)\)")
HEX = re.compile(r"\b[0-9a-f]{7,40}\b")
HISTORY_PHRASES = ("final code", "the run before", "last round", "this round", "re-measured since",
                   "no time left", "ci caught")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def commit_ids(line: str) -> list[str]:
    """Commit-id-like tokens of ``line``: hex with a digit and a letter a-f inside backticks or parentheses,
    or a whole backtick span of 7-40 digits (an all-digit commit id)."""
    found = []
    for span in BACKTICKS.findall(line) + PARENTHESES.findall(line):
        found += [token for token in HEX.findall(span) if re.search(r"[0-9]", token) and re.search(r"[a-f]", token)]
    found += [span for span in BACKTICKS.findall(line) if HEX.fullmatch(span) and span.isdigit()]
    return list(dict.fromkeys(found))


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            out.append((number, line))
    return out


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; keep it to 200 and move detail to docs/"


@pytest.mark.parametrize("line, expected", [
    ("final code (`76ccf50`): **1.418**", ["76ccf50"]),
    ("It also passed on `8bdf70c`, before", ["8bdf70c"]),
    ("Earlier runs: (ebeff21 and 57b26df)", ["ebeff21", "57b26df"]),
    ("final code (`7654027`): **0.323**", ["7654027"]),
    ("`deadbeef` and (1234567) and `e5-small` and (a 4,005-code list)", []),  # no digit / no letter a-f
    ("`--seed 1234567`, `cfg_seed` and `2,973 ms`", []),
    ("a trial id 3f040b2b outside any span", []),
    ("`RUN_DIR/study.journal` (a `JournalStorage` file)", []),
])
def test_commit_id_pattern(line, expected):
    assert commit_ids(line) == expected


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_no_development_history(page):
    problems = []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        problems += [f"line {number}: commit id {token}" for token in commit_ids(line)]
        problems += [f"line {number}: {phrase!r}" for phrase in HISTORY_PHRASES if phrase in line.lower()]
    assert not problems, f"{page.relative_to(ROOT)} describes history, not the product: " + "; ".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_relative_links_resolve(page):
    broken = []
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
                continue  # a URL (http:, mailto:, ...) or an anchor in the same page
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"line {number}: {target}")
    assert not broken, f"{page.relative_to(ROOT)}: links to missing files: " + "; ".join(broken)


# ----------------------------------------------------------------------------- the results schema
CFG_PLACEHOLDER = "cfg_<name>"  # one documented row for the trials table's per-TrialConfig-field columns


def documented_columns() -> dict[str, set[str]]:
    """Column names in docs/results.md: under each ``### <table>`` heading of the ``## Schema`` section, the
    backticked names in the first cell of every table row."""
    tables: dict[str, set[str]] = {}
    section, table = None, None
    for _, line in prose_lines((ROOT / "docs" / "results.md").read_text(encoding="utf-8")):
        if line.startswith("## "):
            section, table = line[3:].strip(), None
        elif line.startswith("### ") and section == "Schema":
            table = line[4:].strip().strip("`")
            tables[table] = set()
        elif table and line.startswith("|"):
            first = line.strip().strip("|").split("|")[0].strip()
            if first == "column" or set(first) <= set("-: "):
                continue  # the header row and the separator row
            tables[table].update(re.findall(r"`([^`]+)`", first))
    return tables


def declared_columns() -> dict[str, set[str]]:
    """The columns the code writes: results/schema.py's declarations, as results/store.py stores them."""
    from alchemy_tune.results import schema as results, store as result_store

    return {
        "trials": {name for name, _ in results.TRIAL_COLUMNS} | {CFG_PLACEHOLDER},
        "steps": set(result_store.stored_schema(results.STEPS_SCHEMA).names),
        "metrics": set(result_store.stored_schema(results.METRICS_SCHEMA).names),
    }


def test_results_page_documents_the_three_tables():
    assert set(documented_columns()) == set(declared_columns())


@pytest.mark.parametrize("table", ["trials", "steps", "metrics"])
def test_results_schema_matches_the_code(table):
    documented = documented_columns().get(table, set())
    declared = declared_columns()[table]
    assert documented == declared, (
        f"docs/results.md, table {table}: undocumented {sorted(declared - documented)}, "
        f"documented but not written {sorted(documented - declared)}")
