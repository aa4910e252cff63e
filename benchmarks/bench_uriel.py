"""URIEL lookups vs each source's own API, side by side, for MASSIVE's 52 locales.

Run: ``python benchmarks/bench_uriel.py`` (needs setuptools<81 for lang2vec's module, the test extra).
Prints, per feature spec, the median time of one lookup both ways and the ratio, and the same for a fresh
process (open the cache file + first lookup, paid once per trial process). Target: ratio >= 50.
Then the same for URIEL+ (``UrielPlusTable`` vs ``URIELPlus.get_vector``, after the package's own
integration, ~2 min) and the URIEL+ lookup ÷ the lang2vec lookup for the paper's corresponding sets.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # testing/

from alchemy_tune.languages import uriel  # noqa: E402
from alchemy_tune.languages.codes import to_uriel  # noqa: E402
from alchemy_tune.tasks import TASKS  # noqa: E402

MASSIVE = list(TASKS["massive"].languages)  # the 52 locales, from the task registry
SPECS = {"syntax_knn+syntax_average+geo": 5, "fam": 3}  # spec -> lang2vec repetitions (fam ~3 s each)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources deprecation
        import lang2vec.lang2vec as l2v

    langs = [to_uriel(code) for code in MASSIVE]
    uriel.UrielTable.load()  # make sure the cache file exists; its build is not what is measured
    uriel.MEMO.forget()
    start = time.perf_counter()
    table = uriel.UrielTable.load()
    open_seconds = time.perf_counter() - start
    print(f"{len(MASSIVE)} MASSIVE locales -> {len(set(langs))} lang2vec codes; "
          f"UrielTable.load() from the cache file: {open_seconds * 1000:.1f} ms")
    print(f"{'spec':32s} {'dim':>5s} {'lang2vec':>12s} {'UrielTable':>12s} {'ratio':>8s} "
          f"{'fresh process':>14s} {'ratio':>7s}")
    for spec, repeats in SPECS.items():
        ours = table.vectors(spec, langs)
        ref = l2v.get_features(langs, spec)
        expected = np.array([[0.0 if v == "--" else float(v) for v in ref[lang]] for lang in langs],
                            np.float32)
        if not np.array_equal(ours, expected):
            raise SystemExit(f"{spec}: UrielTable and lang2vec disagree")
        t_l2v = median_seconds(lambda: l2v.get_features(langs, spec), repeats)
        t_ours = median_seconds(lambda: table.vectors(spec, langs), 50)
        # What a fresh trial process pays: open the cache file, then the first lookup.
        t_cold = median_seconds(
            lambda: (uriel.MEMO.forget(), uriel.UrielTable.load().vectors(spec, langs)), 5)
        print(f"{spec:32s} {ours.shape[1]:5d} {t_l2v * 1000:10.1f}ms {t_ours * 1000:10.3f}ms "
              f"{t_l2v / t_ours:7.0f}x {t_cold * 1000:12.1f}ms {t_l2v / t_cold:6.0f}x")


def main_urielplus() -> None:
    from alchemy_tune.languages import urielplus
    from testing.urielplus_api import query_vectors

    langs = [to_uriel(code) for code in MASSIVE]
    u = urielplus.integrated()
    table = urielplus.UrielPlusTable.load()
    glottocodes = [table.glottocode(code) for code in langs]
    urielplus.MEMO.forget()
    start = time.perf_counter()
    table = urielplus.UrielPlusTable.load()
    print(f"\nURIEL+ {urielplus.version()}: UrielPlusTable.load() from the cache file: "
          f"{(time.perf_counter() - start) * 1000:.1f} ms")
    print(f"{'spec':32s} {'dim':>5s} {'get_vector':>12s} {'UrielPlusTable':>14s} {'ratio':>8s}")
    for spec, repeats in {"syntactic+geographic": 3, "genetic": 1}.items():
        ours = table.vectors(spec, langs)
        ref = np.concatenate([query_vectors(u, s, glottocodes) for s in spec.split("+")], axis=1)
        if not np.array_equal(ours, np.where(ref == -1, 0, ref)):
            raise SystemExit(f"{spec}: UrielPlusTable and URIEL+'s get_vector disagree")
        t_api = median_seconds(lambda: [u.get_vector(s, glottocodes) for s in spec.split("+")], repeats)
        t_ours = median_seconds(lambda: table.vectors(spec, langs), 50)
        print(f"{spec:32s} {ours.shape[1]:5d} {t_api * 1000:10.1f}ms {t_ours * 1000:12.3f}ms "
              f"{t_api / t_ours:7.0f}x")
    l2v = uriel.UrielTable.load()
    pairs = {"syntax_knn+syntax_average+geo": "syntactic+geographic", "fam": "genetic"}
    for l2v_spec, plus_spec in pairs.items():
        t_l2v = median_seconds(lambda: l2v.vectors(l2v_spec, langs), 50)
        t_plus = median_seconds(lambda: table.vectors(plus_spec, langs), 50)
        print(f"lookup URIEL+ {plus_spec} ÷ lang2vec {l2v_spec}: {t_plus / t_l2v:.2f} "
              f"({t_plus * 1000:.3f} vs {t_l2v * 1000:.3f} ms)")


if __name__ == "__main__":
    main()
    main_urielplus()
