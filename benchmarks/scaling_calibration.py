"""Calibration of the scaling statistics (``alchemy_tune/analysis/scaling.py``) by simulation.

Run: ``python benchmarks/scaling_calibration.py [--sims 400] [--seed 0] [--sd 0.03 0.01 0.02]``. Each
simulation draws test scores ``Y[size, language, seed] = law(size) + a_l + b_(size, s) + e`` (normal
language, seed and residual effects; the **seed effect is drawn anew at every size**, as each size is its own training run; every score rounded to
a multiple of 1/60, the accuracy step of a 60-example test set) at six sizes 25…800 for 8 languages × 3
seeds, and a treated cube ``Y + Δ(size) + b'_(size, s) + e'`` (its own seed and residual noise on top of the
baseline's), then analyses them as ``analyze`` does. Printed per design, each rate with its Monte Carlo
standard error:

- coverage of the mean at each size, and of the power law's top and exponent b where the fit is identified;
- how often a curve that follows the law is called not monotone, and how often its extrapolation check fails
  (false alarms), and how often a flat curve (every step's true change 0) is called not monotone;
- coverage of Δ at each size; the trend test's rate of p < 0.05 when Δ does not change with size (false
  positives), and its power and the coverage of the slope and of the crossing size when Δ shrinks through 0;
- the coverage of the data-efficiency interval (the size a better curve needs to reach the baseline's fitted
  score at the largest size).

Targets (issue #32): false alarms ≤ 0.06; coverage of the per-size means, Δ(n) and data efficiency ≥ 0.93.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from alchemy_tune.analysis import scaling as S

SIZES = np.array([25, 50, 100, 200, 400, 800], float)
TRUE = (0.80, 1.5, 0.5)
STEP = 1 / 60
SD = (0.03, 0.01, 0.02)  # language, seed (per size), residual


def draw(rng, law, n_lang=8, n_seed=3, sd=SD, lang=None):
    """Scores [size, language, seed]; ``lang``: language effects to share with another cube."""
    lang = rng.normal(0, sd[0], n_lang)[None, :, None] if lang is None else lang
    seeds = rng.normal(0, sd[1], (len(SIZES), 1, n_seed))  # a seed effect of each size's own run
    y = law(SIZES)[:, None, None] + lang + seeds + rng.normal(0, sd[2], (len(SIZES), n_lang, n_seed))
    return np.round(y / STEP) * STEP, lang


def rate(hits: float, n: int) -> str:
    p = hits / max(n, 1)
    return f"{p:.3f} ± {math.sqrt(p * (1 - p) / max(n, 1)):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sd", type=float, nargs=3, default=SD, metavar=("LANGUAGE", "SEED", "RESIDUAL"),
                        help="standard deviations of the effects (the seed's drawn per size)")
    args = parser.parse_args()
    sd = tuple(args.sd)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    law = lambda n: S.power(TRUE, n)  # noqa: E731
    truth = law(SIZES)
    cover_top = cover_b = fits = 0
    cover_mean, not_monotone, alarms = [], 0, 0
    for _ in range(args.sims):
        c = S.curve(SIZES, draw(rng, law, sd=sd)[0])
        fit = c.fits.get("power law with a ceiling")
        if fit is not None and fit["identified"]:
            fits += 1
            (tlo, thi), _, (blo, bhi) = fit["intervals"]
            cover_top += tlo <= TRUE[0] <= thi
            cover_b += blo <= TRUE[2] <= bhi
        cover_mean += [lo <= t <= hi for (lo, hi), t in zip(c.mean_intervals, truth)]
        not_monotone += not c.monotone
        alarms += c.extrapolation is not None and not c.extrapolation["consistent"]
    n = args.sims
    print(f"curve, power law (top {TRUE[0]}, a {TRUE[1]}, b {TRUE[2]}), sd language/seed per size/residual {sd}, "
          f"{n} sims:")
    print(f"  coverage of the mean per size {rate(sum(cover_mean), len(cover_mean))}; false 'not monotone' "
          f"{rate(not_monotone, n)}; extrapolation false alarms {rate(alarms, n)}")
    print(f"  power law identified {fits}/{n}; coverage top {rate(cover_top, fits)}, b {rate(cover_b, fits)}")
    # a plateau is where a drop is hardest to tell from noise: every step's true change is 0
    flat_alarms = sum(not S.curve(SIZES, draw(rng, lambda n: 0.7 + 0 * n, sd=sd)[0]).monotone for _ in range(n))
    print(f"curve, flat (0.7 at every size): false 'not monotone' {rate(flat_alarms, n)}")
    for name, delta, slope in (("Δ constant (-0.02): no trend", lambda n: -0.02 + 0 * n, 0.0),
                               ("Δ = 0.04 - 0.015 ln(n/25): shrinks through 0", lambda n: 0.04 - 0.015 * np.log(n / 25),
                                -0.015)):
        crossing = 25 * math.exp(0.04 / 0.015) if slope else None
        positives = cover_slope = cover_cross = crossed = 0
        cover_delta = []
        for _ in range(n):
            base, _ = draw(rng, law, sd=sd)
            extra = rng.normal(0, sd[1] / 2, (len(SIZES), 1, base.shape[2])) + rng.normal(0, 0.01, base.shape)
            treated = np.round((base + delta(SIZES)[:, None, None] + extra) / STEP) * STEP
            t = S.delta_trend(SIZES, treated, base)
            cover_delta += [e.lo <= v <= e.hi for e, v in zip(t.effects, delta(SIZES))]
            positives += t.slope.p < 0.05
            cover_slope += t.slope.lo <= slope <= t.slope.hi
            if crossing is not None and t.crossing is not None:
                crossed += 1
                lo, hi = t.crossing_interval
                cover_cross += lo <= crossing <= hi
        kind = "false-positive rate" if not slope else "power"
        extra = f"; crossing found {crossed}/{n}, its coverage {rate(cover_cross, crossed)}" if slope else ""
        print(f"Δ(n), {name}: coverage of Δ per size {rate(sum(cover_delta), len(cover_delta))}; trend test "
              f"{kind} {rate(positives, n)}, slope coverage {rate(cover_slope, n)}{extra}")
    # data efficiency: a better curve (top 0.85) on the same languages reaches the baseline's score at 800
    # at 212 examples per language
    better = (0.85, 1.5, 0.5)
    needs = (1.5 / (0.85 - float(truth[-1]))) ** 2
    found = covered = 0
    for _ in range(n):
        base, lang = draw(rng, law, sd=sd)
        treated, _ = draw(rng, lambda n: S.power(better, n), sd=sd, lang=lang)
        m = S.size_to_match(S.curve(SIZES, treated), S.curve(SIZES, base))
        if math.isfinite(m.get("needs_lo", math.nan)):
            found += 1
            covered += m["needs_lo"] <= needs <= m["needs_hi"]
    print(f"data efficiency, power law (top {better[0]}) vs the baseline's fitted score at 800 (true size "
          f"{needs:.0f}): interval found {found}/{n}, coverage {rate(covered, found)}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
