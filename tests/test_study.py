"""The shipped study: its report is what its shipped tables give, with one command, and the README quotes it."""

from __future__ import annotations

import re
from pathlib import Path

from alchemy_tune.cli import main

ROOT = Path(__file__).resolve().parent.parent
TABLES = ["docs/study/tables/study", "docs/study/tables/confirm-study"]


def test_the_shipped_report_is_what_the_shipped_tables_give(tmp_path, monkeypatch, capsys):
    """`alchemy-tune analyze docs/study/tables/study docs/study/tables/confirm-study --out docs/study`
    (docs/studies.md) regenerates docs/study/report.md exactly: a change to the statistics that changes the
    study's numbers fails here until the report is regenerated."""
    monkeypatch.chdir(ROOT)
    assert main(["analyze", *TABLES, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == \
        (ROOT / "docs/study/report.md").read_text(encoding="utf-8")


def test_the_readme_and_the_study_page_quote_the_reports_verdict():
    """The headline numbers (the confirmed Δ on test and seen languages with their intervals) appear in the
    README and docs/studies.md as the report gives them."""
    report = (ROOT / "docs/study/report.md").read_text(encoding="utf-8")
    verdict = report.split("## Verdict", 1)[1].strip().splitlines()[:2]
    quoted = []
    for sentence in verdict:
        delta, lo, hi = re.search(r"Δ = ([+-]\d\.\d{3}) \[95% CI ([+-]\d\.\d{3}), ([+-]\d\.\d{3})\]", sentence).groups()
        quoted.append(f"{delta} [{lo}, {hi}]".replace("-", "−"))
    for page in ("README.md", "docs/studies.md"):
        text = (ROOT / page).read_text(encoding="utf-8").replace("95% CI ", "")
        assert all(q in text for q in quoted), (page, quoted)
