"""The scaling section of ``analyze``: test-split score against training examples per language.

For every configuration of the settings other than the training size (a *series*) and each role (seen and
test languages), the sizes form a cube ``[size, language, seed]`` of test-split scores (every series of a
role on the same languages and seeds, so two curves pair). From it, with the statistics of
:mod:`alchemy_tune.analysis.scaling` (every interval from the languages × seeds model of every comparison):

- ``scaling``: the mean score per size with its interval;
- ``scaling_fits``: a power law with a ceiling and a log-linear fit, parameters with intervals where the data
  identify them (a note saying why not otherwise), which fits better (held-out error), the extrapolation
  check on the largest size and the monotonicity check;
- ``scaling_delta``: Δ against the matched plain fine-tuning at each size, read as better, worse,
  equivalent within ±m or inconclusive;
- ``scaling_trend``: the size × λ interaction (Δ's slope per e-fold of data), the change it implies over
  the sizes run read against ±m, and where Δ changes sign;
- ``data_efficiency``: the horizontal shift between a configuration's fitted curve and its baseline's at
  the baseline's fitted score at the largest size, as a ratio of sizes with its interval.

Sizes are numbers (``train_examples``: the actual count, also where ``train_size`` is None), and the
reference size is the largest one. Whether the sizes trained for a fixed number of optimiser steps or for
steps proportional to the data (fixed epochs) is read off the trials and said in the notes and the verdict.
The verdict sentences are written from these tables; none says "no effect" or "did not change" unless the
90% interval lies inside ±m.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alchemy_tune.analysis import paired as P
from alchemy_tune.analysis import scaling as S
from alchemy_tune.analysis.analyze import TRAIN_EXAMPLES
from alchemy_tune.analysis.stats import DEFAULT_MARGIN, EQUIVALENT, INCONCLUSIVE, LEVEL

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


def _cube(frames: list[pd.DataFrame | None], langs=None, seeds=None) -> tuple[np.ndarray, pd.Index]:
    """Stack [language × seed] frames (one per size) on their union of languages and seeds (or on the given
    ones, so that the curves of one role share their cells)."""
    present = [f for f in frames if f is not None and not f.empty]
    if not present:
        return np.full((len(frames), 0, 0), math.nan), pd.Index([])
    if langs is None or seeds is None:
        langs, seeds = _union(present)
    cube = np.stack([np.full((len(langs), len(seeds)), math.nan) if f is None or f.empty
                     else f.reindex(index=langs, columns=seeds).to_numpy(float) for f in frames])
    return cube, langs


def _union(frames) -> tuple[pd.Index, pd.Index]:
    frames = [f for f in frames if f is not None and not f.empty]
    if not frames:
        return pd.Index([]), pd.Index([])
    langs, seeds = frames[0].index, frames[0].columns
    for f in frames[1:]:
        langs, seeds = langs.union(f.index), seeds.union(f.columns)
    return langs, seeds


def _all_plain(u: P.Units, keys) -> bool:
    return all(bool(u.plain[k]) for k in keys)


def steps_regime(u: P.Units, keys) -> str:
    """How a series' sizes were trained: a fixed number of optimiser steps at every size (size is then a
    property of the data alone), or steps proportional to the data (fixed epochs: larger sizes also train
    longer). Read off the trials' final step where it is stored, else off ``max_steps`` and ``epochs``."""
    rows = [u.records[k] for k in keys]
    sizes = np.array([float(r.get(TRAIN_EXAMPLES, math.nan)) for r in rows])
    final = np.array([float(r.get("final_step", math.nan)) for r in rows])
    max_steps = {r.get("cfg_max_steps") for r in rows}
    epochs = {r.get("cfg_epochs") for r in rows}
    if np.isfinite(final).all() and final.min() > 0:
        if final.max() / final.min() < 1.05:
            return f"fixed steps: {final.min():.0f} optimiser steps at every size"
        per = final / sizes
        if per.max() / per.min() < 1.25:
            return f"steps proportional to the data (fixed epochs): {final.min():.0f} to {final.max():.0f} steps"
        return f"steps neither fixed nor proportional to the data: {final.min():.0f} to {final.max():.0f}"
    capped = [m for m in max_steps if m is not None and m == m]
    if len(capped) == 1 and len(max_steps) == 1:
        return (f"fixed steps: max_steps = {capped[0]:.0f} at every size (where epochs = "
                f"{', '.join(f'{e:g}' for e in epochs)} do not end training first)")
    if not capped:
        return f"steps proportional to the data (fixed epochs: {', '.join(f'{e:g}' for e in epochs)})"
    return "steps differ between sizes (max_steps varies)"


def analyse(u: P.Units, *, margin: float = DEFAULT_MARGIN, level: float = LEVEL
            ) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[str]]:
    """The scaling tables, notes per table, and the verdict sentences (empty when fewer than 2 sizes).
    ``margin``: the equivalence margin m (a score difference) every reading is held against."""
    all_series, notes_list = series(u)
    if not all_series:  # one table saying so; the others would only repeat it
        return {"scaling": pd.DataFrame()}, {"scaling": NO_CURVE}, []
    rows = {name: [] for name in TABLES}
    curves: dict[tuple[str, str], S.Curve] = {}
    trends: dict[tuple[str, str], S.DeltaTrend] = {}
    for role in ROLES:
        frames = {label: [u.of_config(k).get(role) for k in by_size.values()]
                  for label, by_size in all_series.items()}
        langs, seeds = _union([f for fs in frames.values() for f in fs])
        for label, by_size in all_series.items():
            sizes, keys = list(by_size), list(by_size.values())
            cube, _ = _cube(frames[label], langs, seeds)
            if not cube.size:
                continue
            c = S.curve(sizes, cube, level=level, margin=margin)
            curves[(label, role)] = c
            for k, size in enumerate(c.sizes):
                n_seeds = int(np.isfinite(c.cube[k]).any(axis=0).sum())
                langs_k = int(np.isfinite(c.cube[k]).any(axis=1).sum())
                e = c.mean_effects[k]
                rows["scaling"].append({"setting": label, "role": role, "examples": size, "score": c.means[k],
                                        "score_lo": e.lo, "score_hi": e.hi, "n": f"{langs_k}×{n_seeds}"})
            rows["scaling_fits"] += _fit_rows(label, role, c)
            if _all_plain(u, keys):
                continue
            d_frames = [P.delta_matrix(u.of_config(k), u.baseline_of(k), role) for k in keys]
            paired = [i for i, d in enumerate(d_frames) if not d.empty]
            if len(paired) < 2:
                continue
            d, d_langs = _cube([d_frames[i] for i in paired])
            trend = S.delta_trend([sizes[i] for i in paired], d, np.zeros_like(d), level=level, languages=d_langs,
                                  margin=margin)
            trends[(label, role)] = trend
            for size, e in zip(trend.sizes, trend.effects):
                rows["scaling_delta"].append({"setting": label, "role": role, "examples": size, "Δ": e.delta,
                                              "Δ_lo": e.lo, "Δ_hi": e.hi, "Δ_lo90": e.lo90, "Δ_hi90": e.hi90,
                                              "p": e.p, "reading": e.reading(margin),
                                              "n": f"{e.languages}×{e.seeds}", "halfwidth": e.halfwidth})
            s, change = trend.slope, trend.change
            rows["scaling_trend"].append({
                "setting": label, "role": role, "slope": s.delta, "slope_lo": s.lo, "slope_hi": s.hi, "p": s.p,
                **change, "margin": margin,
                "sign_change_at": trend.crossing if trend.crossing is not None else math.nan,
                "sign_change_at_lo": trend.crossing_interval[0], "sign_change_at_hi": trend.crossing_interval[1],
                "words": trend.words})
    for (label, role), c in curves.items():
        by_size = all_series[label]
        if _all_plain(u, by_size.values()):
            continue
        base = _baseline_label(u, all_series, label)
        if base is not None and (base, role) in curves:
            rows["data_efficiency"].append({"setting": label, "role": role,
                                            **S.size_to_match(c, curves[(base, role)], level=level)})
    order = {label: i for i, label in enumerate(all_series)}  # series first, then role, as the settings sort
    tables = {name: pd.DataFrame(sorted(r, key=lambda row: (order[row["setting"]], ROLES.index(row["role"]))))
              for name, r in rows.items()}
    regimes = sorted({steps_regime(u, list(v.values())) for v in all_series.values()})
    notes = {"scaling": "; ".join(["test split, every size; interval: languages × seeds model (seed effects "
                                   "specific to each size included); examples = actual training examples per "
                                   "language", *regimes, *notes_list])}
    if not tables["scaling_delta"].empty:
        notes["scaling_delta"] = ("each size's Δ against the plain fine-tuning of the same size and seeds (test "
                                  f"split; languages × seeds model); reading against ±{margin:g} (equivalent: the "
                                  "90% interval inside); exploratory, no Holm")
        notes["scaling_trend"] = (f"change = slope × ln(largest/smallest size): Δ's change over the sizes run, read "
                                  f"against ±{margin:g}")
    if not tables["scaling_fits"].empty:
        notes["scaling_fits"] = ("fitted to the mean score per size; intervals: the languages × seeds model of each "
                                 "parameter's delta-method matrix, shown only where the fit is identified; "
                                 "held_out_rmse: leave-one-size-out; extrapolation: each form fitted without the "
                                 "largest size, which it predicts (fails: p < 0.05)")
    return tables, notes, verdict_sentences(tables, curves, trends, all_series, u, margin)


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
        row = {**base, "form": form, "better": form == c.better, "held_out_rmse": fit["held_out_rmse"],
               "identified": fit["identified"]}
        if fit["identified"]:
            for name, value, (lo, hi) in zip(_PARAMS[form], fit["params"], fit["intervals"]):
                row.update({name: value, f"{name}_lo": lo, f"{name}_hi": hi})
        else:  # a shape the data do not pin down: its parameters would read as findings
            row["note"] = f"parameters not identified: {fit['why']}; none shown"
        x = c.extrapolations.get(form)
        if x is not None:
            row.update({"extrapolated_to": x["size"], "predicted": x["predicted"], "observed": x["observed"],
                        "prediction_error": x["error"], "prediction_error_lo": x["lo"],
                        "prediction_error_hi": x["hi"], "extrapolation": x["reading"],
                        "extrapolation_ok": x["consistent"]})
        rows.append(row)
    return rows


def _readings(trend: S.DeltaTrend, margin: float) -> str:
    """How Δ reads across the sizes: counts per reading, and what the inconclusive ones leave open."""
    got: dict[str, list] = {}
    for size, e in zip(trend.sizes, trend.effects):
        got.setdefault(e.reading(margin), []).append((size, e))
    words = {"better": "better", "worse": "worse", EQUIVALENT: f"equivalent within ±{margin:g}",
             INCONCLUSIVE: "inconclusive", "identical": "identical"}
    parts = [f"{words.get(r, r)} at {', '.join(f'{n:g}' for n, _ in v)}" for r, v in got.items() if r]
    if INCONCLUSIVE in got:
        lo = min(e.lo for _, e in got[INCONCLUSIVE])
        hi, at = max((e.hi, n) for n, e in got[INCONCLUSIVE])
        parts.append(f"the inconclusive sizes cannot rule out Δ from {lo:+.3f} to {hi:+.3f} "
                     f"(upper limit at {at:g})")
    return "; ".join(parts)


def verdict_sentences(tables, curves, trends, all_series, u: P.Units, margin: float = DEFAULT_MARGIN) -> list[str]:
    """One sentence per URIEL series on test languages, and one on plain fine-tuning's own curve."""
    out = []
    for label, by_size in all_series.items():
        c = curves.get((label, "unseen"))
        if c is None:
            continue
        regime = steps_regime(u, list(by_size.values()))
        if _all_plain(u, by_size.values()):
            if c.better:
                fit = c.fits[c.better]
                shape = f"{c.better} fits best" + (
                    "" if fit["identified"] else f" (its parameters are not identified: {fit['why']})")
            else:
                shape = "; ".join(c.notes) if c.notes else "no fit"
            x = c.extrapolation
            if x is not None:
                said = {"fails": "the extrapolation check fails",
                        EQUIVALENT: f"the extrapolation holds within ±{margin:g}",
                        "identical": "the extrapolation is exact"}.get(
                    x["reading"], f"the extrapolation check is inconclusive (errors from {x['lo']:+.3f} to "
                                  f"{x['hi']:+.3f} not ruled out)")
                shape += (f"; fitted without {x['size']:g} ({x['form']}), it predicts {x['predicted']:.3f} there "
                          f"and {x['observed']:.3f} was observed: {said}")
            e0, e1 = c.mean_effects[0], c.mean_effects[-1]
            out.append(f"Scaling, plain fine-tuning ({label}; {regime}): the test-language score goes from "
                       f"{c.means[0]:.3f} [{e0.lo:.3f}, {e0.hi:.3f}] at {c.sizes[0]:g} to {c.means[-1]:.3f} "
                       f"[{e1.lo:.3f}, {e1.hi:.3f}] at {c.sizes[-1]:g} examples per language ({shape}).")
            continue
        trend = trends.get((label, "unseen"))
        if trend is None:
            out.append(f"Scaling, {label}: no matched plain fine-tuning at two or more sizes, so no Δ(n).")
            continue
        a, b = trend.effects[0], trend.effects[-1]
        out.append(f"Scaling, {label} vs plain fine-tuning on test languages ({regime}; {a.languages}×{a.seeds} "
                   f"per size): at {trend.sizes[0]:g} examples per language {S.effect_words(a, margin)}; at "
                   f"{trend.sizes[-1]:g}, {S.effect_words(b, margin)}; by size: {_readings(trend, margin)}; "
                   f"{trend.words}" + _efficiency_words(tables, label) + ".")
    return out


def _efficiency_words(tables, label: str) -> str:
    e = tables["data_efficiency"]
    e = e[(e["setting"] == label) & (e["role"] == "unseen")] if not e.empty else e
    if e.empty or math.isnan(e.iloc[0].get("needs", math.nan)):
        return ""
    r = e.iloc[0]
    if r["needs"] == math.inf:
        return f"; data efficiency: {r['reading']} (plain fine-tuning's fitted score at {r['target_at']:g})"
    return (f"; data efficiency: to reach plain fine-tuning's fitted score at {r['target_at']:g} "
            f"({r['target']:.3f}) its fitted curve needs about {r['needs']:.0f} examples per language, "
            f"{r['reading']}")
