"""Synthetic runs with the real report format, for the analysis tests and the benchmarks.

The scores follow a simple, known model (a URIEL effect that grows with λ on unseen languages, a
training-size effect, a per-language offset, noise shared by every configuration trained with the same seed,
as real replicates share their data order and initialisation, and a little noise per trial), so tests can
check that the analysis recovers it and pairs by seed. Nothing here trains a model.
"""

from __future__ import annotations

import datetime as _dt
import math
import random
from typing import Iterator

from alchemy_tune.core import constants as C
from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.results.writer import ResultsWriter

from alchemy_tune.core.settings import SearchSettings
from alchemy_tune.results.run_record import RunRecord

# (dataset code, URIEL code, seen, role): role seen | val (chooses, never trained on) | unseen (test)
DEFAULT_LANGS = (("eng", "eng", True, "seen"), ("fra", "fra", True, "seen"), ("hin", "hin", True, "seen"),
                 ("arb", "arb", True, "seen"), ("swh", "swh", False, "unseen"), ("jpn", "jpn", False, "unseen"),
                 ("tur", "tur", False, "val"), ("vie", "vie", False, "unseen"))
_GROUP_ROLES = {"seen": ("seen",), "val": ("val",), "unseen": ("unseen",), "all": ("seen", "val", "unseen"),
                "select": ("seen", "val")}


def languages(n: int) -> tuple[tuple[str, str, bool, str], ...]:
    """``n`` languages: the named defaults first, then made-up codes ``x00``, ``x01``, ... (half seen)."""
    extra = tuple((f"x{i:02d}", f"x{i:02d}", i % 2 == 0, "seen" if i % 2 == 0 else "unseen")
                  for i in range(max(0, n - len(DEFAULT_LANGS))))
    return (DEFAULT_LANGS + extra)[:n]


def _seed_noise(seed, lang: str, split: str) -> float:
    """The part of a score that depends on the training seed only (string seeding is deterministic)."""
    return random.Random(f"{seed}/{lang}/{split}").gauss(0, 0.02)


def report(config: dict, step: int, n_steps: int, langs, rng: random.Random, items: int = 0) -> dict:
    """One report dict in the constants.py format for ``config`` at ``step`` of ``n_steps``; with ``items``,
    each language's test accuracy is a count over that many test examples, whose answers are reported too
    (the examples a seed gets right are shared by every configuration trained with that seed)."""
    lam = float(config["lambda"])
    uriel_gain = 0.08 * math.log1p(lam) / math.log1p(10.0) * (len(config["uriel_features"]) / 30)
    size_gain = 0.05 * math.log10(config["train_size"] or 1000)
    progress = step / n_steps
    out = {C.STEP: step, C.EPOCH: 2.0 * progress, C.EXAMPLES_SEEN: step * config["batch_size"],
           C.LAMBDA: lam, C.TASK_LOSS: 1.8 - progress, C.URIEL_LOSS: 0.05 / (1 + step),
           C.PRIMARY_METRIC: "accuracy", C.STATUS: C.RUNNING, C.REASON: "", C.TRAIN_SECONDS: 0.5 * step}
    out[C.TRAIN_LOSS] = out[C.TASK_LOSS] + lam * out[C.URIEL_LOSS]
    per_lang = {}
    for i, (lang, uriel, seen, role) in enumerate(langs):
        scores = {}
        for split in C.SPLITS_EVALUATED:
            base = (0.55 if seen else 0.35) + size_gain + (0.0 if seen else uriel_gain) + 0.01 * (i % 5)
            noise = _seed_noise(config.get("seed"), lang, split) + rng.gauss(0, 0.005)
            acc = min(1.0, max(0.0, progress * (base + noise)))
            if items and split == "test":
                acc = round(acc * items) / items
                out.setdefault(C.ITEMS, {})[lang] = _answers(config.get("seed"), lang, acc, items)
            scores[split] = {"accuracy": acc, "macro_f1": acc * 0.9}
        per_lang[lang] = {"uriel": uriel, "seen": seen, "role": role, **scores}
    out[C.LANGS] = per_lang
    out.update(_averages(per_lang, langs))
    return out


def _averages(per_lang: dict, langs) -> dict:
    """Every average of the report (``dev_seen``, ``test_unseen``, ``dev_select``, ...) of ``per_lang``'s accuracy."""
    out = {}
    for key in C.AVERAGE_KEYS:
        split, _, group = key.partition("_")
        if split not in C.SPLITS_EVALUATED or group not in _GROUP_ROLES:
            continue
        vals = [per_lang[lang][split]["accuracy"] for lang, _, _, role in langs if role in _GROUP_ROLES[group]]
        out[key] = sum(vals) / len(vals) if vals else float("nan")
    return out


def _answers(seed, lang: str, accuracy: float, n: int) -> dict:
    """``n`` test examples (4 classes) of which round(accuracy · n) are right: the first of a permutation
    seeded by the training seed and language, so configurations of one seed mostly agree."""
    labels = [i % 4 for i in range(n)]
    order = list(range(n))
    random.Random(f"items/{seed}/{lang}").shuffle(order)
    right = set(order[:round(accuracy * n)])
    return {"prediction": [y if i in right else (y + 1) % 4 for i, y in enumerate(labels)], "label": labels}


def grid(n_trials: int, repeats: int = 3, first_seed: int = 42) -> Iterator[dict]:
    """Configurations cycling through λ, URIEL subsets, schedules and projections at two training sizes,
    each run with ``repeats`` seeds (``first_seed``, ``first_seed`` + 1, ...) one after the other;
    λ = 0 is plain fine-tuning (constant schedule, default URIEL settings)."""
    lambdas, subsets = (0.0, 1.0, 10.0, 25.0), ("syntax_knn", "geo", "syntax_knn+syntax_average+geo")
    schedules, projections, sizes = ("constant", "warmup"), ("linear", "mlp"), (100, 400)
    for i in range(n_trials):
        c = i // repeats
        lam = lambdas[c % 4]
        changes = {} if lam == 0 else dict(uriel_features=subsets[(c // 4) % 3],
                                           lambda_schedule=schedules[(c // 24) % 2],
                                           projection=projections[(c // 12) % 2])
        cfg = TrialConfig(lambda_=lam, train_size=sizes[(c // 48) % 2], seed=first_seed + i % repeats, **changes)
        yield cfg.to_dict()


SELECTION = "dev_select"  # the default selection metric: seen + validation languages' dev sets


def write_meta(run_dir: str, run_id: str, kind: str = "search", metric: str | None = None) -> None:
    """The run's alchemy_run.json, as the search writes it."""
    metric = metric or (SELECTION if SELECTION in C.AVERAGE_KEYS else "dev_unseen")
    RunRecord(kind=kind, run_id=run_id, created=_dt.datetime.now(_dt.timezone.utc).isoformat(),
              versions={"alchemy_tune": "synthetic"}, task="bible-genre",
              settings=SearchSettings(metric=metric, sampler="tpe", pruner="none")).write(run_dir)


def make_run(run_dir: str, *, n_trials: int = 8, n_langs: int = 8, n_evals: int = 4, seed: int = 0,
             run_id: str | None = None, failed: int = 0, running: int = 0, repeats: int = 3,
             kind: str = "search", first_seed: int = 42, metric: str | None = None, items: int = 0) -> str:
    """Write a complete run folder (alchemy_run.json + results) and return its path; ``items``: test examples
    per language whose answers are stored (0: none, as in runs written before they were).

    The last ``running`` trials stop half-way without ending; the ``failed`` ones before them fail half-way.
    """
    run_id = run_id or f"synthetic-{seed}"
    write_meta(run_dir, run_id, kind, metric)
    rng, langs = random.Random(seed), languages(n_langs)
    writer = ResultsWriter(run_dir, run_id, flush_interval_s=math.inf)
    for i, cfg in enumerate(grid(n_trials, repeats, first_seed)):
        tid = f"trial_{i:04d}"
        last = n_evals // 2 if i >= n_trials - failed - running else n_evals
        for step in range(1, last + 1):
            writer.add_report(tid, cfg, report(cfg, step, n_evals, langs, rng, items))
        if i >= n_trials - running:
            continue
        if i >= n_trials - failed - running:
            writer.end_trial(tid, C.FAILED, error="RuntimeError: synthetic failure", wall_seconds=1.0)
        else:
            writer.end_trial(tid, C.COMPLETED, resources={"CPU": 1, "GPU": 0}, wall_seconds=2.0 * n_evals)
    writer.flush()
    return run_dir


def scaling_truth(n: float, lam: float) -> float:
    """The known law of :func:`make_scaling_run`: plain fine-tuning's test score on the test languages,
    ``0.6 − 0.9·n^(−0.5)``, plus for λ > 0 a Δ that shrinks with n and changes sign at 100 examples."""
    return 0.6 - 0.9 * n ** -0.5 + (0.03 * math.log(100 / n) / math.log(4) if lam > 0 else 0.0)


def make_scaling_run(run_dir: str, *, sizes=(25, 50, 100, 200, 400), lambdas=(0.0, 1.0), seeds=(42, 43, 44),
                     n_langs: int = 8, noise: float = 0.01, seed: int = 0, all_data: int | None = None,
                     group: tuple[tuple[str, ...], int] | None = None) -> str:
    """A finished grid run of ``sizes`` × ``lambdas`` × ``seeds`` whose test-language scores follow
    :func:`scaling_truth` plus a per-language offset (mean 0), a per-seed offset shared by every configuration
    of that seed, and ``noise`` per cell. With ``all_data``, a size ``None`` (all the data) is added whose
    seen languages report ``all_data`` training examples each. With ``group`` = (languages, size), those seen
    languages train on ``size`` examples whatever the trial's size (``group_langs``). Seen languages score 0.1
    higher."""
    run_id = f"scaling-{seed}"
    write_meta(run_dir, run_id)
    rng = random.Random(seed)
    langs = languages(n_langs)
    offsets = [0.02 * (i - (len(langs) - 1) / 2) / len(langs) for i in range(len(langs))]
    seed_offsets = {s: random.Random(f"scaling-seed/{s}").gauss(0, 0.01) for s in seeds}
    writer = ResultsWriter(run_dir, run_id, flush_interval_s=math.inf)
    grid_sizes = [*sizes, *([None] if all_data else [])]
    k = 0
    for size in grid_sizes:
        n = all_data if size is None else size
        for lam in lambdas:
            for s in seeds:
                apart = dict(group_langs=group[0], group_train_size=group[1]) if group else {}
                cfg = TrialConfig(lambda_=lam, train_size=size, seed=s, **apart).to_dict()
                per_lang = {}
                for i, (lang, uriel, seen, role) in enumerate(langs):
                    value = scaling_truth(n, lam) + offsets[i] + seed_offsets[s] + rng.gauss(0, noise)
                    value += 0.1 if seen else 0.0
                    per_lang[lang] = {"uriel": uriel, "seen": seen, "role": role,
                                      "dev": {"accuracy": value}, "test": {"accuracy": value}}
                    if seen:
                        per_lang[lang][C.TRAIN] = {C.EXAMPLES: group[1] if group and lang in group[0] else n}
                out = {C.STEP: 10, C.EPOCH: 1.0, C.EXAMPLES_SEEN: 320, C.LAMBDA: lam, C.TRAIN_LOSS: 1.0,
                       C.TASK_LOSS: 1.0, C.URIEL_LOSS: 0.0, C.PRIMARY_METRIC: "accuracy", C.STATUS: C.COMPLETED,
                       C.REASON: "", C.TRAIN_SECONDS: 1.0, C.LANGS: per_lang}
                out.update(_averages(per_lang, langs))
                tid = f"trial_{k:04d}"
                k += 1
                writer.add_report(tid, cfg, out)
                writer.end_trial(tid, C.COMPLETED, wall_seconds=1.0)
    writer.flush()
    return run_dir


def write_scored_run(run_dir: str, langs, trials, run_id: str = "scored") -> str:
    """A run whose per-language scores are given: ``trials`` is a list of (config dict, {lang: score}); each
    trial reports once (its last step), its dev and test scores equal, so what a test sets is what the
    analysis pairs. ``langs``: (dataset code, URIEL code, seen, role) tuples."""
    write_meta(run_dir, run_id)
    writer = ResultsWriter(run_dir, run_id, flush_interval_s=math.inf)
    for i, (config, scores) in enumerate(trials):
        per_lang = {lang: {"uriel": uriel, "seen": seen, "role": role,
                           **{split: {"accuracy": scores[lang], "macro_f1": scores[lang]}
                              for split in C.SPLITS_EVALUATED}}
                    for lang, uriel, seen, role in langs}
        report = {C.STEP: 1, C.EPOCH: 1.0, C.EXAMPLES_SEEN: 32, C.LAMBDA: float(config.get("lambda", 0.0)),
                  C.PRIMARY_METRIC: "accuracy", C.STATUS: C.COMPLETED, C.REASON: "", C.TRAIN_SECONDS: 1.0,
                  C.TEST_SCORED: True, C.LANGS: per_lang, **_averages(per_lang, langs)}
        writer.add_report(f"trial_{i:04d}", config, report)
        writer.end_trial(f"trial_{i:04d}", C.COMPLETED, wall_seconds=1.0)
    writer.flush()
    return run_dir


def write_stepped_run(run_dir: str, langs, trials, run_id: str = "stepped") -> str:
    """A run whose trials report at several steps with given dev and test scores: ``trials`` is a list of
    (config dict, [(dev {lang: score}, test {lang: score}) per step 1, 2, ...]); a trial's best step is the
    one with the highest mean dev score, so a test sets which step each twin would pick on its own."""
    write_meta(run_dir, run_id)
    writer = ResultsWriter(run_dir, run_id, flush_interval_s=math.inf)
    for i, (config, steps) in enumerate(trials):
        for step, (dev, test) in enumerate(steps, 1):
            per_lang = {lang: {"uriel": uriel, "seen": seen, "role": role,
                               **{split: {"accuracy": (dev if split == "dev" else test)[lang],
                                          "macro_f1": (dev if split == "dev" else test)[lang]}
                                  for split in C.SPLITS_EVALUATED}}
                        for lang, uriel, seen, role in langs}
            last = step == len(steps)
            report = {C.STEP: step, C.EPOCH: float(step), C.EXAMPLES_SEEN: 32 * step,
                      C.LAMBDA: float(config.get("lambda", 0.0)), C.PRIMARY_METRIC: "accuracy",
                      C.STATUS: C.COMPLETED if last else C.RUNNING, C.REASON: "", C.TRAIN_SECONDS: 1.0,
                      C.TEST_SCORED: True, C.LANGS: per_lang, **_averages(per_lang, langs)}
            writer.add_report(f"trial_{i:04d}", config, report)
        writer.end_trial(f"trial_{i:04d}", C.COMPLETED, wall_seconds=1.0)
    writer.flush()
    return run_dir
