"""The scaling section of ``analyze``: test-split score against training examples per language.

For every configuration of the settings other than the training size (a *series*) and each role (seen and
test languages), the sizes form a cube ``[size, language, seed]`` of test-split scores. From it, with the
statistics of :mod:`alchemy_tune.analysis.scaling` (languages and seeds resampled, as in every comparison):

- ``scaling``: the mean score per size with its interval;
- ``scaling_fits``: a power law with a ceiling and a log-linear fit, parameters with intervals, which fits
  better (held-out error), the extrapolation check on the largest size and the monotonicity check;
- ``scaling_delta``: Δ against the matched plain fine-tuning at each size (the languages × seeds model);
- ``scaling_trend``: the size × λ interaction (Δ's slope per e-fold of data) and where Δ changes sign;
- ``data_efficiency``: the examples per language a configuration needs to reach its baseline's score at the
  largest size, by its fitted curve.

Sizes are numbers (``train_examples``: the actual count, also where ``train_size`` is None), and the
reference size is the largest one. The verdict sentences are written from these tables.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alchemy_tune.analysis import paired as P
from alchemy_tune.analysis import scaling as S
from alchemy_tune.analysis.analyze import TRAIN_EXAMPLES

SIZE = "cfg_train_size"
ROLES = ("unseen", "seen")
ROLE_WORDS = {"unseen": "test languages", "seen": "seen languages"}
TABLES = ("scaling", "scaling_fits", "scaling_delta", "scaling_trend", "data_efficiency")
NO_CURVE = "only one training size in these runs: no curve"


def series(u: P.Units) -> tuple[dict[str, dict[float, str]], list[str]]:
    """setting label -> {examples per language: configuration key}, and notes (sizes two settings share)."""
    if SIZE not in u.identity or TRAIN_EXAMPLES not in u.configs:
        return {}, []
    others = [c for c in u.searched if c != SIZE]
    out: dict[str, dict[float, str]] = {}
    notes = []

    def order(item):  # series in the order of their settings' values (λ = 0, 0.1, 1, ...)
        first = u.records[item[1]]
        return [(0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, str(v))
                for v in (P.hashable(first[c]) for c in others)]

    for key, first in sorted(u.records.items(), key=lambda kv: order((None, kv[0]))):
        size = first.get(TRAIN_EXAMPLES)
        if size is None or not np.isfinite(size):
            continue
        label = P.label(first, others) if others else "all trials"
        mine = out.setdefault(label, {})
        if float(size) in mine:
            notes.append(f"{label}: two training sizes train on {size:g} examples per language; the first is kept")
            continue
        mine[float(size)] = key
    return {k: dict(sorted(v.items())) for k, v in out.items() if len(v) >= 2}, notes


def _cube(frames: list[pd.DataFrame | None]) -> tuple[np.ndarray, pd.Index]:
    """Stack [language × seed] frames (one per size) on their union of languages and seeds."""
    present = [f for f in frames if f is not None and not f.empty]
    if not present:
        return np.full((len(frames), 0, 0), math.nan), pd.Index([])
    langs = present[0].index
    seeds = present[0].columns
    for f in present[1:]:
        langs, seeds = langs.union(f.index), seeds.union(f.columns)
    cube = np.stack([np.full((len(langs), len(seeds)), math.nan) if f is None or f.empty
                     else f.reindex(index=langs, columns=seeds).to_numpy(float) for f in frames])
    return cube, langs


def _all_plain(u: P.Units, keys) -> bool:
    return all(bool(u.plain[k]) for k in keys)


def analyse(u: P.Units, *, n_boot: int = S.N_BOOT) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[str]]:
    """The scaling tables, notes per table, and the verdict sentences (empty when fewer than 2 sizes)."""
    all_series, notes_list = series(u)
    if not all_series:  # one table saying so; the others would only repeat it
        return {"scaling": pd.DataFrame()}, {"scaling": NO_CURVE}, []
    rows = {name: [] for name in TABLES}
    curves: dict[tuple[str, str], S.Curve] = {}
    for label, by_size in all_series.items():
        sizes, keys = list(by_size), list(by_size.values())
        for role in ROLES:
            cube, langs = _cube([u.of_config(k).get(role) for k in keys])
            if not cube.size:
                continue
            c = S.curve(sizes, cube, n_boot=n_boot)
            curves[(label, role)] = c
            for k, size in enumerate(c.sizes):
                seeds = int(np.isfinite(cube[k]).any(axis=0).sum())
                langs_k = int(np.isfinite(cube[k]).any(axis=1).sum())
                rows["scaling"].append({"setting": label, "role": role, "examples": size, "score": c.means[k],
                                        "score_lo": c.mean_intervals[k][0], "score_hi": c.mean_intervals[k][1],
                                        "n": f"{langs_k}×{seeds}"})
            rows["scaling_fits"] += _fit_rows(label, role, c)
            if _all_plain(u, keys):
                continue
            d_frames = [P.delta_matrix(u.of_config(k), u.baseline_of(k), role) for k in keys]
            paired = [i for i, d in enumerate(d_frames) if not d.empty]
            if len(paired) < 2:
                continue
            d, langs = _cube([d_frames[i] for i in paired])
            trend = S.delta_trend([sizes[i] for i in paired], d, np.zeros_like(d), n_boot=n_boot,
                                  languages=langs)
            for size, e in zip(trend.sizes, trend.effects):
                rows["scaling_delta"].append({"setting": label, "role": role, "examples": size, "Δ": e.delta,
                                              "Δ_lo": e.lo, "Δ_hi": e.hi, "p": e.p, "n": f"{e.languages}×{e.seeds}",
                                              "mde": e.mde})
            s = trend.slope
            rows["scaling_trend"].append({
                "setting": label, "role": role, "slope": s.delta, "slope_lo": s.lo, "slope_hi": s.hi, "p": s.p,
                "sign_change_at": trend.crossing if trend.crossing is not None else math.nan,
                "sign_change_at_lo": trend.crossing_interval[0], "sign_change_at_hi": trend.crossing_interval[1],
                "reading": trend.words})
    for (label, role), c in curves.items():
        by_size = all_series[label]
        if _all_plain(u, by_size.values()):
            continue
        base = _baseline_label(u, all_series, label)
        if base is not None and (base, role) in curves:
            rows["data_efficiency"].append({"setting": label, "role": role,
                                            **S.size_to_match(c, curves[(base, role)])})
    tables = {name: pd.DataFrame(r) for name, r in rows.items()}
    notes = {"scaling": "; ".join(["test split, every size; interval: languages × seeds resampled (the same "
                                   "draw at every size); examples = actual training examples per language",
                                   *notes_list])}
    if not tables["scaling_delta"].empty:
        notes["scaling_delta"] = ("each size's Δ against the plain fine-tuning of the same size and seeds (test "
                                  "split; languages × seeds model); exploratory, no Holm")
    if not tables["scaling_fits"].empty:
        notes["scaling_fits"] = ("fitted to the mean score per size; intervals: languages × seeds bootstrap; "
                                 "held_out_rmse: leave-one-size-out; extrapolation: fitted without the largest "
                                 "size, which it predicts")
    return tables, notes, verdict_sentences(tables, curves, all_series, u)


def _baseline_label(u: P.Units, all_series, label: str) -> str | None:
    """The series of plain fine-tuning matched to ``label`` (the same other settings)."""
    keys = list(all_series[label].values())
    bases = {u.base_of[k] for k in keys}
    for other, by_size in all_series.items():
        if other != label and _all_plain(u, by_size.values()) and {u.base_of[k] for k in by_size.values()} & bases:
            return other
    return None


_PARAMS = {"power law with a ceiling": ("top", "a", "b"), "log-linear": ("intercept", "per_e_fold")}


def _fit_rows(label: str, role: str, c: S.Curve) -> list[dict]:
    base = {"setting": label, "role": role, "monotone": c.monotone}
    if not c.monotone:
        return [{**base, "form": "none", "note": "; ".join(c.notes)}]
    rows = []
    for form, fit in c.fits.items():
        row = {**base, "form": form, "better": form == c.better, "held_out_rmse": fit["held_out_rmse"]}
        for name, value, (lo, hi) in zip(_PARAMS[form], fit["params"], fit["intervals"]):
            row.update({name: value, f"{name}_lo": lo, f"{name}_hi": hi})
        if S.at_edge(form, fit["params"], c.sizes):
            row["note"] = ("no ceiling shows within these sizes (b too close to 0, or a step): top and a are not "
                           "determined, and the log-linear form stands in for it")
        x = c.extrapolation
        if form == c.better and x is not None:
            row.update({"extrapolated_to": x["size"], "predicted": x["predicted"], "observed": x["observed"],
                        "prediction_error": x["error"], "prediction_error_lo": x["lo"],
                        "prediction_error_hi": x["hi"], "extrapolation_ok": x["consistent"]})
        rows.append(row)
    return rows


def verdict_sentences(tables, curves, all_series, u: P.Units) -> list[str]:
    """One sentence per URIEL series on test languages, and one on plain fine-tuning's own curve."""
    out = []
    delta, trend = tables["scaling_delta"], tables["scaling_trend"]
    for label, by_size in all_series.items():
        c = curves.get((label, "unseen"))
        if c is None:
            continue
        if _all_plain(u, by_size.values()):
            first, last = c.means[0], c.means[-1]
            shape = (f"{c.better} fits best" if c.better else
                     "; ".join(c.notes) if c.notes else "no fit")
            x = c.extrapolation
            if x is not None and not x["consistent"]:
                shape += (f"; fitted without {x['size']:g}, it predicts {x['predicted']:.3f} there and "
                          f"{x['observed']:.3f} was observed: the extrapolation check fails")
            out.append(f"Scaling, plain fine-tuning ({label}): the test-language score goes from {first:.3f} at "
                       f"{c.sizes[0]:g} to {last:.3f} at {c.sizes[-1]:g} examples per language ({shape}).")
            continue
        mine = delta[(delta["setting"] == label) & (delta["role"] == "unseen")] if not delta.empty else delta
        row = trend[(trend["setting"] == label) & (trend["role"] == "unseen")] if not trend.empty else trend
        if mine.empty or row.empty:
            out.append(f"Scaling, {label}: no matched plain fine-tuning at two or more sizes, so no Δ(n).")
            continue
        a, b = mine.iloc[0], mine.iloc[-1]
        out.append(f"Scaling, {label} vs plain fine-tuning on test languages: Δ {a['Δ']:+.3f} "
                   f"[{a['Δ_lo']:+.3f}, {a['Δ_hi']:+.3f}] at {a['examples']:g} and {b['Δ']:+.3f} "
                   f"[{b['Δ_lo']:+.3f}, {b['Δ_hi']:+.3f}] at {b['examples']:g} examples per language "
                   f"({a['n']} per size); {row.iloc[0]['reading']}" + _efficiency_words(tables, label) + ".")
    return out


def _efficiency_words(tables, label: str) -> str:
    e = tables["data_efficiency"]
    e = e[(e["setting"] == label) & (e["role"] == "unseen")] if not e.empty else e
    if e.empty or math.isnan(e.iloc[0].get("needs", math.nan)):
        return ""
    if e.iloc[0]["needs"] == math.inf:
        return f"; {e.iloc[0]['reading']} at {e.iloc[0]['target_at']:g} examples per language"
    r = e.iloc[0]
    if np.isfinite(r["needs_lo"]) and np.isfinite(r["needs_hi"]):
        span = f" [{r['needs_lo']:.0f}, {r['needs_hi']:.0f}]"
    elif np.isfinite(r["needs_lo"]):
        span = f" [{r['needs_lo']:.0f}, never]"
    else:
        span = ""
    return (f"; to match plain fine-tuning at {r['target_at']:g} it needs about {r['needs']:.0f} examples per "
            f"language{span} ({r['reading']})")

