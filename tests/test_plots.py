"""The report's figures are legible: every text inside the saved image, row labels that do not overlap and
name only what differs, the language roles apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alchemy_tune.analysis import plots

SCHEDULES = ["constant", "warmup", "linear_decay", "cosine_decay", "alchemyscale", "alchemytune"]


@pytest.fixture
def checked(monkeypatch):
    """Run each figure through the real `_save`, after checking its text artists on the real figure."""
    seen = []
    real = plots._save

    def check(fig, path, tag=""):
        fig.tight_layout()
        fig.canvas.draw()  # lays out the legends and ticks as saving will
        renderer = fig.canvas.get_renderer()
        box = fig.get_tightbbox(renderer).padded(0.15).transformed(fig.dpi_scale_trans)
        texts = [fig._suptitle] if fig._suptitle else []
        for legend in fig.legends:
            texts += legend.get_texts()
        for ax in fig.axes:
            texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
            for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
                lo, hi = sorted(limits)
                texts += [t.label1 for t in axis.get_major_ticks() if lo <= t.get_loc() <= hi]
            if ax.get_legend():
                texts += ax.get_legend().get_texts()
        texts = [t for t in texts if t.get_visible() and t.get_text().strip()]
        assert texts
        outside = [t.get_text() for t in texts
                   if not box.contains(*t.get_window_extent(renderer).p0) or
                   not box.contains(*t.get_window_extent(renderer).p1)]
        assert not outside, f"text outside the saved image: {outside}"
        labels = [t for t in texts if t not in [x for legend in fig.legends + [a.get_legend() for a in fig.axes]
                                                if legend for x in legend.get_texts()]]
        legend_texts = [t for t in texts if t not in labels]
        clash = [(a.get_text(), b.get_text()) for a in legend_texts for b in labels
                 if a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer))]
        assert not clash, f"a legend covers a label: {clash}"
        for ax in fig.axes:
            boxes = sorted((t.get_window_extent(renderer) for t in ax.get_yticklabels() if t.get_text()),
                           key=lambda b: b.y0)
            assert all(a.y1 <= b.y0 + 1 for a, b in zip(boxes, boxes[1:])), "row labels overlap"
        seen.append({"title": fig.axes[0].get_title(),
                     "xticks": [t.get_text() for t in fig.axes[0].get_xticklabels()],
                     "yticks": [t.get_text() for t in fig.axes[0].get_yticklabels()],
                     "legend": [t.get_text() for legend in fig.legends + [a.get_legend() for a in fig.axes]
                                if legend for t in legend.get_texts()]})
        out = real(fig, path, tag)
        # and the saved image is that box: nothing cut off at an edge of the PNG
        import matplotlib.image

        height, width = matplotlib.image.imread(str(out)).shape[:2]
        assert (width, height) == pytest.approx((box.width, box.height), abs=3)
        return out

    monkeypatch.setattr(plots, "_save", check)
    return seen


def _comparisons(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        lam = 0.1 if i < 4 else 1.0
        rows.append({"lambda": lam, "lambda_schedule": SCHEDULES[i % 6], "scale_interval": 100,
                     "uriel_features": "syntax_knn+syntax_average+geo" if i % 2 else "geo",
                     "configuration": f"λ={lam:g}, lambda_schedule={SCHEDULES[i % 6]}, scale_interval=100, "
                                      "uriel_features=syntax_knn+syntax_average+geo",
                     **{f"Δ{r}": d for r, d in (("unseen", rng.normal(0, 0.01)), ("seen", rng.normal(0, 0.01)))}})
    table = pd.DataFrame(rows)
    for role in ("unseen", "seen"):
        table[f"Δ{role}_lo"], table[f"Δ{role}_hi"] = table[f"Δ{role}"] - 0.01, table[f"Δ{role}"] + 0.01
    return table


def test_comparison_rows_name_what_differs_and_every_text_is_inside(tmp_path, checked):
    table = _comparisons(13)
    labels, shared = plots.row_labels(table, "configuration")
    assert shared == "scale_interval=100"  # on every row: said once, in the title
    assert all("scale_interval" not in label for label in labels)
    assert all(max(map(len, label.split("\n"))) <= 50 for label in labels)  # wrapped between settings
    assert plots.deltas(table, "configuration", "Δ vs plain fine-tuning", tmp_path / "c.png") is not None
    (fig,) = checked
    assert "every row: scale_interval=100" in fig["title"]


def test_per_language_keeps_the_roles_apart_in_the_protocols_order(tmp_path, checked):
    table = pd.DataFrame({"language": ["Swahili (swh)", "English (eng)", "Italian (ita)", "German (deu)"],
                          "lang": ["swh", "eng", "ita", "deu"], "role": ["unseen", "seen", "val", "seen"],
                          "plain fine-tuning (λ=0)": [0.4, 0.6, 0.5, 0.55], "λ=0.1": [0.41, 0.59, 0.5, 0.56]})
    table["seen"] = table["role"] == "seen"
    assert plots.per_language(table, "test accuracy", tmp_path / "p.png") is not None
    (fig,) = checked
    assert fig["xticks"] == ["English (eng)", "German (deu)", "Italian (ita)", "Swahili (swh)"]  # seen, val, test
    assert "validation (chooses)" in fig["legend"] and "test (never trained on, never chooses)" in fig["legend"]


def test_every_other_figure_keeps_its_text_inside(tmp_path, checked):
    rng = np.random.default_rng(1)
    langs = pd.DataFrame({"lang": [f"l{i}" for i in range(12)], "language": [f"Language number {i}" for i in range(12)],
                          "role": ["seen"] * 6 + ["val"] * 2 + ["unseen"] * 4,
                          "family": ["Indo-European", "Niger-Congo", "Austronesian"] * 4,
                          "delta": rng.normal(0, 0.01, 12)})
    langs["delta_lo"], langs["delta_hi"] = langs["delta"] - 0.01, langs["delta"] + 0.01
    assert plots.language_deltas(langs, tmp_path / "l.png") is not None
    rows = checked[-1]["yticks"]
    roles = ["seen" if not r.endswith(("*", "(val)")) else "val" if r.endswith("(val)") else "unseen" for r in rows]
    assert roles == sorted(roles, key=["unseen", "val", "seen"].index)  # bottom to top: test, val, seen
    imp = pd.DataFrame({"parameter": ["lambda", "lambda_schedule", "uriel_features"], "importance": [0.7, 0.2, 0.1]})
    assert plots.importance(imp, "ped-anova", tmp_path / "i.png") is not None
    scaling = pd.DataFrame({"setting": (["λ=0 and a long setting name, uriel_features=syntax_knn+geo"] * 3
                                        + ["λ=1, uriel_features=syntax_knn+syntax_average+geo"] * 3) * 2,
                            "role": ["unseen"] * 6 + ["seen"] * 6, "examples": [25.0, 100.0, 400.0] * 4,
                            "score": rng.uniform(0.3, 0.5, 12)})
    scaling["score_lo"], scaling["score_hi"] = scaling["score"] - 0.02, scaling["score"] + 0.02
    assert plots.scaling(scaling, tmp_path / "s.png") is not None
    assert checked[-1]["xticks"] == ["25", "100", "400"] and checked[-1]["title"] == "seen languages (trained on)"
    delta = scaling[scaling["setting"].str.startswith("λ=1")].rename(
        columns={"score": "Δ", "score_lo": "Δ_lo", "score_hi": "Δ_hi"})
    assert plots.delta_curves(delta, tmp_path / "d.png") is not None
    assert plots.scaling(scaling[scaling["examples"] == 25.0], tmp_path / "one.png") is None  # one size: no curve
    trials = pd.DataFrame({"best_dev_seen": rng.uniform(0.4, 0.6, 20), "best_dev_unseen": rng.uniform(0.3, 0.5, 20),
                           "cfg_lambda": [0.0, 0.1, 1.0, 10.0] * 5})
    front = pd.DataFrame({"seen": [0.5, 0.6], "unseen": [0.5, 0.4]})
    assert plots.pareto(trials, "best_dev_seen", "best_dev_unseen", front, "dev", tmp_path / "p.png") is not None
    assert len(checked) == 5


def test_the_longest_configuration_names_of_the_shipped_spaces_fit(tmp_path, checked):
    """Acceptance: each shipped grid space's configurations, labelled as the report labels them, drawn as
    one comparisons figure: every text inside, no row labels overlapping."""
    from pathlib import Path

    from alchemy_tune.analysis.paired import label
    from alchemy_tune.tuning.space_file import load_space

    rng = np.random.default_rng(2)
    drawn = 0
    for path in sorted(Path(__file__).resolve().parents[1].glob("search_spaces/*.yaml")):
        grid = load_space(str(path)).grid()
        if not grid:
            continue
        frame = pd.DataFrame(grid)
        varying = [c for c in frame.columns if frame[c].astype(str).nunique() > 1 and c != "seed"]
        if not varying:
            continue
        table = frame[varying].copy()
        table["configuration"] = [label(row, [f"cfg_{c}" for c in varying])
                                  for row in frame[varying].add_prefix("cfg_").to_dict("records")]
        for role in ("unseen", "seen"):
            table[f"Δ{role}"] = rng.normal(0, 0.01, len(table))
            table[f"Δ{role}_lo"], table[f"Δ{role}_hi"] = table[f"Δ{role}"] - 0.01, table[f"Δ{role}"] + 0.01
        assert plots.deltas(table, "configuration", f"{path.stem}: Δ vs plain fine-tuning",
                            tmp_path / f"{path.stem}.png") is not None
        drawn += 1
    assert drawn >= 3 and len(checked) == drawn


def test_error_bars_of_an_estimate_outside_its_interval_do_not_fail():
    from alchemy_tune.analysis.plots import error_bars

    bars = error_bars([0.0, -0.0014, 0.1], [-0.1, 0.0, float("nan")], [0.1, 0.0, float("nan")])
    assert bars.tolist() == [[0.1, 0.0, 0.0], [0.1, 0.0014, 0.0]]
