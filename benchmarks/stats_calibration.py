"""Calibration of the paired-comparison statistics: false positives, coverage, power and equivalence by
simulation.

Run: ``python benchmarks/stats_calibration.py [--sims 4000] [--seed 0]``. Each design draws ``--sims``
matrices of paired differences ``D[language, seed] = Δ + a_l + b_s + e_ls`` (normal effects unless the
design says t(3), scaled to the same sd; every cell rounded to a multiple of 1/120, the accuracy step of a
120-example test set; some designs with cells missing at random) and analyses each with
``alchemy_tune.analysis.stats.paired_effect``, the method every Δ of ``analyze`` uses. Per design, three
sets of draws:

- true Δ = 0: the rate of p < 0.05 (false positives, with its Monte Carlo standard error) and the coverage of
  the 95% interval;
- true Δ = 1 point: the power (rate of p < 0.05), and the power of the test that knows the true variance
  components (a z test with the true standard error), and their ratio;
- true Δ = +1 point = the margin: how often the comparison reads "equivalent within ±1 point" (both
  one-sided tests at 5%; must be ≤ 0.05).

For comparison, the null draws are also judged by the method of moments with Satterthwaite's degrees of
freedom (components truncated at 0, no pivot): ``moments p<0.05``.

Targets (every null design with ≥ 2 seeds): false-positive rate ≤ 0.06, coverage ≥ 0.93, equivalence at the
margin ≤ 0.05; power ≥ 0.9 × the known-variance test's. The last one cannot hold where the seeds are few and
their component is not negligible: a test that does not know σ²_seed estimates it from S − 1 degrees of
freedom (1 with 2 seeds), and no valid test of unknown variance matches one that knows it. The table prints
the ratio for every design so the cost of not knowing is visible; designs where the ratio is below 0.9 are
listed, not hidden.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np

from alchemy_tune.analysis.stats import EQUIVALENT, paired_effect, t_quantile, t_two_sided_p

STEP = 1 / 120  # one test example of 120
POINT = 0.01  # one accuracy point
MARGIN = POINT


@dataclass(frozen=True)
class Design:
    name: str
    languages: int
    seeds: int
    sd_language: float
    sd_seed: float
    sd_residual: float
    holes: int = 0  # cells without a score (NaN), at random
    heavy: bool = False  # t(3) effects instead of normal ones

    @property
    def se(self) -> float:
        return math.sqrt(self.sd_language**2 / self.languages + self.sd_seed**2 / self.seeds
                         + self.sd_residual**2 / (self.languages * self.seeds))


def _designs() -> list[Design]:
    out = []
    for n_lang, n_seed in ((8, 2), (8, 3), (8, 5), (150, 5)):
        for name, sd_seed in (("no seed effect", 0.0), ("seed sd = language sd", POINT),
                              ("seed sd = 2 x language sd", 2 * POINT)):
            out.append(Design(f"{n_lang} x {n_seed}, {name}", n_lang, n_seed, POINT, sd_seed, POINT))
    out += [
        Design("8 x 3, interaction-dominated (residual sd = 3 x language sd)", 8, 3, POINT / 3, POINT / 3, POINT),
        Design("150 x 5, interaction-dominated", 150, 5, POINT / 3, POINT / 3, 3 * POINT),
        Design("8 x 3, t(3) effects, seed sd = language sd", 8, 3, POINT, POINT, POINT, heavy=True),
        Design("150 x 5, t(3) effects, seed sd = language sd", 150, 5, POINT, POINT, POINT, heavy=True),
        Design("8 x 3, seed sd = language sd, 2 missing cells", 8, 3, POINT, POINT, POINT, holes=2),
        Design("150 x 5, seed sd = language sd, 40 missing cells", 150, 5, POINT, POINT, POINT, holes=40),
        Design("8 x 1, no seed effect (one seed)", 8, 1, POINT, 0.0, POINT),
    ]
    return out


DESIGNS = _designs()


def _effects(rng, sd: float, shape, heavy: bool) -> np.ndarray:
    if not heavy:
        return rng.normal(0, sd, shape)
    return rng.standard_t(3, shape) * sd / math.sqrt(3)  # t(3) has variance 3


def draw(design: Design, delta: float, rng: np.random.Generator) -> np.ndarray:
    shape = (design.languages, design.seeds)
    d = (delta + _effects(rng, design.sd_language, (shape[0], 1), design.heavy)
         + _effects(rng, design.sd_seed, (1, shape[1]), design.heavy)
         + _effects(rng, design.sd_residual, shape, design.heavy))
    d = np.round(d / STEP) * STEP
    if design.holes:
        d.ravel()[rng.choice(d.size, design.holes, replace=False)] = np.nan
    return d


def moments_p(d: np.ndarray) -> float:
    """The method of moments with Satterthwaite's df (components truncated at 0), on complete matrices."""
    if np.isnan(d).any() or d.shape[1] < 2:
        return math.nan
    L, S = d.shape
    m, row, col = d.mean(), d.mean(1), d.mean(0)
    ms_l, ms_s = S * ((row - m) ** 2).sum() / (L - 1), L * ((col - m) ** 2).sum() / (S - 1)
    f_e = (L - 1) * (S - 1)
    ms_e = ((d - row[:, None] - col[None, :] + m) ** 2).sum() / f_e
    terms = [(ms_l, L - 1)] if ms_l >= ms_e else [(ms_e, f_e)]
    if ms_s > ms_e:
        terms += [(ms_s, S - 1), (-ms_e, f_e)]
    num = sum(a for a, _ in terms)
    if num <= 0:
        return math.nan
    df = num**2 / sum(a * a / f for a, f in terms)
    return t_two_sided_p(m / math.sqrt(num / (L * S)), df)


def _rejects(e) -> bool:
    return bool(e.p < 0.05) if not math.isnan(e.p) else bool(e.delta != 0 and not e.identical)


def known_variance_power(design: Design, delta: float) -> float:
    """Power of the two-sided z test with the true standard error (the test that knows the components)."""
    z = delta / design.se
    crit = -t_quantile(0.025, 1e9)
    from scipy.special import ndtr
    return float(ndtr(z - crit) + ndtr(-z - crit))


def run(design: Design, sims: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    reject = cover = moments = power = equivalent = 0
    for _ in range(sims):
        d = draw(design, 0.0, rng)
        e = paired_effect(d)
        reject += _rejects(e)
        cover += e.lo <= 0 <= e.hi
        p = moments_p(d)
        moments += p < 0.05 if p == p else 0
        power += _rejects(paired_effect(draw(design, POINT, rng)))
        equivalent += paired_effect(draw(design, MARGIN, rng)).reading(MARGIN) == EQUIVALENT
    rate = reject / sims
    return {"reject": rate, "mcse": math.sqrt(rate * (1 - rate) / sims) if rate else math.sqrt(0.05 * 0.95 / sims),
            "cover": cover / sims, "moments": moments / sims, "power": power / sims,
            "known": known_variance_power(design, POINT), "equivalent": equivalent / sims}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"{args.sims} simulations per design and truth; effects in accuracy points (1 point = 0.01); "
          f"margin ±{MARGIN:g}")
    print(f"{'design':60} {'p<0.05':>7} {'±MCSE':>6} {'cover':>6} {'moments':>8} {'power':>6} "
          f"{'known':>6} {'ratio':>6} {'equiv@m':>8}")
    failed, weak = [], []
    for i, design in enumerate(DESIGNS):
        r = run(design, args.sims, args.seed + i)
        ratio = r["power"] / r["known"] if r["known"] else math.nan
        print(f"{design.name:60} {r['reject']:7.4f} {r['mcse']:6.4f} {r['cover']:6.4f} {r['moments']:8.4f} "
              f"{r['power']:6.3f} {r['known']:6.3f} {ratio:6.2f} {r['equivalent']:8.4f}", flush=True)
        if design.seeds >= 2 and (r["reject"] > 0.06 or r["cover"] < 0.93 or r["equivalent"] > 0.05):
            failed.append(design.name)
        if ratio < 0.9:
            weak.append(f"{design.name} ({ratio:.2f})")
    print(f"targets (designs with >= 2 seeds: false positives <= 0.06, coverage >= 0.93, equivalence at the "
          f"margin <= 0.05): {'met' if not failed else 'NOT met: ' + '; '.join(failed)}")
    print(f"power below 0.9 x the known-variance test's: {'; '.join(weak) if weak else 'none'}"
          f"  ({time.perf_counter() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
