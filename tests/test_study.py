"""The shipped study: its report is what its shipped tables give, with one command, and the README quotes it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alchemy_tune.cli import main

ROOT = Path(__file__).resolve().parent.parent
TABLES = ["docs/study/tables/study", "docs/study/tables/confirm-study"]
SCALING = ["docs/scaling-study/tables/scaling-study", "docs/scaling-study/tables/confirm-scaling-study"]


@pytest.mark.parametrize("tables, report", [(TABLES, "docs/study"), (SCALING, "docs/scaling-study")])
def test_the_shipped_report_is_what_the_shipped_tables_give(tmp_path, monkeypatch, capsys, tables, report):
    """`alchemy-tune analyze docs/study/tables/study docs/study/tables/confirm-study --out docs/study`
    (docs/studies.md) regenerates docs/study/report.md exactly, and the scaling study's command its report: a
    change to the statistics that changes a study's numbers fails here until the report is regenerated."""
    monkeypatch.chdir(ROOT)
    assert main(["analyze", *tables, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == \
        (ROOT / report / "report.md").read_text(encoding="utf-8")


def test_the_readme_and_the_study_page_quote_the_reports_verdict():
    """The headline numbers (the confirmed Δ on test and seen languages with their intervals) appear in the
    README and docs/studies.md as the report gives them."""
    report = (ROOT / "docs/study/report.md").read_text(encoding="utf-8")
    verdict = [line for line in report.split("## Verdict", 1)[1].strip().splitlines() if line][:2]
    quoted = []
    for sentence in verdict:
        delta, lo, hi = re.search(r"Δ = ([+-]\d\.\d{3}) \[95% CI ([+-]\d\.\d{3}), ([+-]\d\.\d{3})\]", sentence).groups()
        quoted.append(f"{delta} [{lo}, {hi}]".replace("-", "−"))
    for page in ("README.md", "docs/studies.md"):
        text = (ROOT / page).read_text(encoding="utf-8").replace("95% CI ", "")
        assert all(q in text for q in quoted), (page, quoted)


def test_the_readme_and_the_study_page_quote_the_scaling_verdict():
    """Each URIEL series' Δ at the smallest and the largest size on test languages, with its interval, appears
    in the README and docs/studies.md as the scaling study's report gives it."""
    report = (ROOT / "docs/scaling-study/report.md").read_text(encoding="utf-8")
    sentences = [s for s in report.split("## Verdict", 1)[1].split("\n## ", 1)[0].splitlines()
                 if s.startswith("Scaling, λ=")]
    assert len(sentences) == 2  # λ = 0.1 and λ = 1
    quoted = [f"{d} [{lo}, {hi}]".replace("-", "−") for sentence in sentences
              for d, lo, hi in re.findall(r"Δ ([+-]\d\.\d{3}) \[95% CI ([+-]\d\.\d{3}), ([+-]\d\.\d{3})\]",
                                          sentence)[:2]]  # at the smallest and the largest size
    assert len(quoted) == 4
    for page in ("README.md", "docs/studies.md"):
        text = (ROOT / page).read_text(encoding="utf-8").replace("95% CI ", "")
        assert all(q in text for q in quoted), (page, quoted)
