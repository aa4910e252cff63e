"""Confirmation runs: re-run a search's best configurations and their matched baselines on fresh seeds.

The best configuration of a search is the maximum of many noisy draws, so its own score is biased
upward. ``alchemy-tune confirm RUN_DIR --top K --repeats R`` picks the K best configurations of the source
run by the run's selection metric (mean over their replicates; never test data), adds each one's matched
plain fine-tuning baseline (λ = 0, constant schedule, every other setting the same), and runs all of them
as R replicates that the source run never used: replicate r with a fresh training seed and, where the
configurations train on a subset (``train_size``) or a control, a fresh data seed, so the confirmation speaks
for new draws of the data as well as of the training (each baseline shares its configuration's seeds and
subsets), as a new run (``kind: confirm``) whose
``alchemy_run.json`` names the source run. Its test-language scores are the numbers to quote; ``analyze``
bases its verdict on confirmation runs when it is given any.

The configurations are run by the ordinary search (Ray Tune, the study journal, the result tables): a
space file written into the new run pins what they share and lists what differs, and the search runs
exactly the chosen configurations, in order, without pruning.
"""

from __future__ import annotations

import json
import sys
import math
import os
from dataclasses import dataclass

import pandas as pd

from alchemy_tune.trial.config import twin_of
from alchemy_tune.core.constants import ORACLE_PREFIX
from alchemy_tune.analysis import paired as P
from alchemy_tune.core.errors import UsageError



@dataclass(frozen=True)
class Plan:
    """What a confirmation run will train."""

    configs: list[dict]
    """Every Ray trial's config, in order: each chosen configuration and baseline × each seed."""
    chosen: list[dict]
    """The K configurations (without seed), best first, with their source selection score."""
    baselines: list[dict]
    seeds: list[int]
    metric: str
    source: dict
    notes: tuple = ()
    """What the ranking left out and why (configurations whose replicates did not all complete)."""
    data_seeds: tuple = ()
    """Replicate r's data seed (beside ``seeds[r]``): fresh ones where the subsets can vary, else the source's."""
    fresh_data: bool = False
    """Whether ``data_seeds`` are fresh (some configuration trains on a subset or a control)."""


def _source_frame(run_dir: str):
    from alchemy_tune.results.run_record import RunRecord
    from alchemy_tune.results.schema import read_trials

    record = RunRecord.read(run_dir)
    rows = read_trials(run_dir).to_pylist()
    if not rows:
        raise UsageError(f"{run_dir}: no trial results yet (results/trials.parquet): nothing to confirm")
    return record, pd.DataFrame(rows, dtype=object)


def _config_of(row: pd.Series) -> dict:
    """The TrialConfig values of a trials-table row (cfg_* columns), as plain Python values."""
    out = {}
    for column, value in row.items():
        if column.startswith("cfg_"):
            value = P.hashable(value)
            out[column[4:]] = list(value) if isinstance(value, tuple) else value
    return out


def plan(run_dir: str, *, top: int, repeats: int, first_seed: int | None = None,
         first_data_seed: int | None = None) -> Plan:
    """Choose the configurations and seeds; UsageError (one line) when there is nothing to confirm."""
    from alchemy_tune.trial.config import TrialConfig, applies

    if top < 1:
        raise UsageError(f"--top: must be a positive integer, got {top}")
    if repeats < 1:
        raise UsageError(f"--repeats: must be a positive integer, got {repeats}")
    record, trials = _source_frame(run_dir)
    metric = record.metric
    if "selection_metric" in trials and trials["selection_metric"].notna().any():
        metric = str(trials["selection_metric"].dropna().iloc[0])
    if metric.removeprefix(ORACLE_PREFIX).startswith("test_"):
        raise UsageError(f"{run_dir}: selection metric {metric!r} is test data; cannot choose with it")
    score = f"best_{metric.removeprefix(ORACLE_PREFIX)}"
    done = trials[:0]
    if score in trials:
        done = trials[(trials["status"] == "completed") & trials[score].notna()]
    if done.empty:
        raise UsageError(f"{run_dir}: no completed trial with a {metric} score: nothing to confirm")
    identity = P.identity_columns(done)
    done = done.assign(_config=P.config_keys(done, identity), _score=done[score].astype(float))
    treated = done[~P.plain_rows(done).astype(bool)]
    if treated.empty:
        raise UsageError(f"{run_dir}: every completed trial is plain fine-tuning (λ=0): nothing to confirm")
    # the value every other part ranks by: the selection metric at each trial's best step, here averaged over
    # the configuration's replicates, all of them: a configuration with a pruned or failed replicate is
    # ranked on fewer seeds than the others, so it is not ranked at all
    replicates = max(int(record.settings.repeats or 1), 1)
    counts = treated.groupby("_config").size()
    full = counts[counts >= replicates].index
    notes = []
    if len(full) < len(counts):
        notes.append(f"{len(counts) - len(full)} configuration(s) with fewer than {replicates} completed "
                     "replicates are not ranked")
        if not len(full):
            raise UsageError(f"{run_dir}: no configuration has all {replicates} replicates completed: nothing to "
                             "confirm (resume the search first)")
        treated = treated[treated["_config"].isin(full)]
    ranking = treated.groupby("_config")["_score"].mean().sort_values(ascending=False, kind="stable")
    mode = record.mode
    if mode == "min":
        ranking = ranking.iloc[::-1]
    chosen, source_data_seeds = [], []
    for key in ranking.index[:top]:
        config = _config_of(treated[treated["_config"] == key].iloc[0])
        config.pop("seed", None)
        source_data_seeds.append(config.pop("data_seed", TrialConfig.data_seed))  # a replicate's, like the seed
        chosen.append({"config": config, "score": float(ranking[key]),
                       "replicates": int((treated["_config"] == key).sum())})
    baselines = _baselines([c["config"] for c in chosen], done)
    earlier, earlier_data = earlier_confirmation_seeds(run_dir, record.run_id, data=True)
    # a second confirmation draws fresh seeds too
    seeds = _fresh(trials, "cfg_seed", earlier, first_seed, repeats, "--seed", "seeds", TrialConfig.seed)
    everything = [c["config"] for c in chosen] + baselines
    fresh_data = any(applies("data_seed", c) for c in everything)
    if fresh_data:
        data_seeds = _fresh(trials, "cfg_data_seed", earlier_data, first_data_seed, repeats, "--data-seed",
                            "data seeds", TrialConfig.data_seed)
    elif first_data_seed is not None:
        raise UsageError(f"--data-seed {first_data_seed}: the configurations train on all the data with no "
                         "control, so a data seed changes nothing; leave it out")
    else:  # nothing to draw: keep the best configuration's own data seed, as recorded
        data_seeds = [source_data_seeds[0]] * repeats
    configs = [{**c, "seed": s, "data_seed": d} for c in everything for s, d in zip(seeds, data_seeds)]
    for config in configs:  # every config must still be valid here (e.g. a model folder that moved)
        TrialConfig.from_dict(config, source=f"{run_dir}: configuration")
    source = {"run_id": record.run_id, "run_dir": os.path.abspath(run_dir) if "://" not in run_dir
              else run_dir, "metric": metric, "oracle": _is_oracle(metric, trials)}
    return Plan(configs, chosen, baselines, seeds, metric, source, tuple(notes), tuple(data_seeds), fresh_data)


def _fresh(trials: pd.DataFrame, column: str, earlier: set[int], first: int | None, repeats: int, flag: str,
           what: str, default: int) -> list[int]:
    """``repeats`` seeds that neither the source run (``column`` of its trials) nor an earlier confirmation
    used: from ``first`` (a UsageError if it overlaps), else one above the largest used."""
    used = {int(s) for s in pd.to_numeric(trials.get(column, pd.Series(dtype=object)), errors="coerce").dropna()}
    used |= earlier
    base = first if first is not None else (max(used) + 1 if used else default)
    if first is not None and set(range(base, base + repeats)) & used:
        raise UsageError(f"{flag} {base}: {what} {base}..{base + repeats - 1} overlap {what} the source run or "
                         f"an earlier confirmation of it used {sorted(used)}; confirmation needs fresh ones")
    return list(range(base, base + repeats))


def earlier_confirmation_seeds(run_dir: str, run_id: str | None, data: bool = False):
    """The seeds of the confirmation runs of ``run_id`` kept beside it (the default place of a
    confirmation): a new one must not reuse them. With ``data``: (seeds, fresh data seeds)."""
    import pyarrow.fs as pafs

    from alchemy_tune.results.run_dir import resolve
    from alchemy_tune.results.run_record import RUN_FILE

    fs, root = resolve(run_dir)
    parent = root.rstrip("/").rsplit("/", 1)[0]
    seeds: set[int] = set()
    data_seeds: set[int] = set()
    skipped: list[str] = []
    try:
        folders = fs.get_file_info(pafs.FileSelector(parent, recursive=False))
    except (OSError, FileNotFoundError):
        return (seeds, data_seeds) if data else seeds
    for info in folders:
        if info.type != pafs.FileType.Directory or info.path.rstrip("/") == root.rstrip("/"):
            continue
        try:
            with fs.open_input_stream(f"{info.path}/{RUN_FILE}") as handle:
                record = json.loads(handle.read())
        except (OSError, FileNotFoundError):
            continue  # not a run folder
        except (ValueError, RecursionError):  # malformed JSON, or nested too deeply to be a record
            skipped.append(info.path.rsplit("/", 1)[-1])
            continue
        if not isinstance(record, dict):
            skipped.append(info.path.rsplit("/", 1)[-1])
            continue
        try:
            if not (record.get("kind") == "confirm" and (record.get("source_run") or {}).get("run_id") == run_id):
                continue
            confirm = record.get("confirm") or {}
            mine = {int(s) for s in confirm.get("seeds") or []}
            fresh = {int(s) for s in confirm.get("data_seeds") or []} if confirm.get("fresh_data") else set()
        except (AttributeError, TypeError, ValueError):  # a neighbour's record of the wrong shape
            skipped.append(info.path.rsplit("/", 1)[-1])
            continue
        seeds |= mine
        data_seeds |= fresh  # a kept source data seed is not the confirmation's to claim
    if skipped:  # a damaged neighbour never breaks this run's confirmation; it is named once
        print(f"note: skipped {len(skipped)} run folder(s) beside {run_dir} whose {RUN_FILE} is damaged: "
              f"{', '.join(sorted(skipped)[:5])}{' …' if len(skipped) > 5 else ''}", file=sys.stderr, flush=True)
    return (seeds, data_seeds) if data else seeds


def _is_oracle(metric: str, trials: pd.DataFrame) -> bool:
    flagged = "oracle" in trials and trials["oracle"].fillna(False).astype(bool).any()
    return bool(flagged or metric.startswith(ORACLE_PREFIX) or metric.endswith(("_unseen", "_all")))


def _baselines(chosen: list[dict], done: pd.DataFrame) -> list[dict]:
    """Each chosen configuration's plain fine-tuning twin, once per distinct baseline.

    Settings that only shape the URIEL loss are taken from the source run's own plain fine-tuning trial
    with the same other settings when there is one (so it is the very baseline the search ran), else they
    keep the chosen configuration's values; λ = 0 with a constant schedule makes them inert.
    """
    plain = done[P.plain_rows(done).astype(bool)]
    out, seen = [], set()
    for config in chosen:
        rest = tuple(sorted((k, repr(v)) for k, v in config.items() if k not in P.URIEL_KEYS))
        if rest in seen:
            continue
        seen.add(rest)
        twin = twin_of(config)
        for _, row in plain.iterrows():
            candidate = _config_of(row)
            candidate.pop("seed", None)
            candidate.pop("data_seed", None)
            if tuple(sorted((k, repr(v)) for k, v in candidate.items() if k not in P.URIEL_KEYS)) == rest:
                twin = candidate
                break
        out.append(twin)
    return out


def space_document(p: Plan, settings: dict) -> dict:
    """The confirmation run's space: shared values fixed, differing ones categorical (the search enqueues
    exactly ``p.configs``, so the categoricals only declare what may appear)."""
    doc: dict = {"description": f"confirmation of {p.source['run_id']}: top {len(p.chosen)} by {p.metric} "
                                f"and their matched baselines, seeds {p.seeds}, data seeds {list(p.data_seeds)}",
                 "search": {"sampler": "grid", "pruner": "none", "trials": len(p.configs), "metric": p.metric,
                            **settings}}
    keys = list(dict.fromkeys(k for c in p.configs for k in c))
    for key in keys:
        values = []
        for config in p.configs:
            value = config.get(key)
            if not any(_same(value, v) for v in values):
                values.append(value)
        doc[key] = values[0] if len(values) == 1 else {"type": "categorical", "choices": values}
    return doc


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def describe(p: Plan) -> list[str]:
    oracle = " [ORACLE selection]" if p.source["oracle"] else ""
    data = (f"fresh data seeds {', '.join(map(str, p.data_seeds))} (replicate r: the r-th of each)"
            if p.fresh_data else f"data seed {p.data_seeds[0]} (all the data, no control: nothing to redraw)")
    lines = [f"confirming the top {len(p.chosen)} configuration(s) of {p.source['run_id']} by {p.metric} "
             f"with seeds {', '.join(map(str, p.seeds))} and {data}{oracle}"]
    varying = [k for k in p.configs[0] if k not in ("seed", "data_seed")
               and len({json.dumps(c.get(k), sort_keys=True, default=str) for c in p.configs}) > 1]
    for i, c in enumerate(p.chosen, 1):
        shown = ", ".join(f"{k}={c['config'].get(k)}" for k in varying) or "the only configuration"
        lines.append(f"  #{i}: {shown}  ({p.metric} {c['score']:.4f}, "
                     f"mean of {c['replicates']} source trial(s))")
    for b in p.baselines:
        shown = ", ".join(f"{k}={b.get(k)}" for k in varying if k not in P.URIEL_KEYS or k == "lambda")
        lines.append(f"  baseline: plain fine-tuning ({shown or 'λ=0'})")
    return lines + [f"  note: {n}" for n in p.notes]


def summary_lines(run_dir: str) -> list[str]:
    """The confirmation run's test-language scores and verdict, from its own tables."""
    from alchemy_tune.analysis import analyze as A
    from alchemy_tune.analysis import verdict as V

    runs = A.load_runs([run_dir])
    u = A.units(runs)
    table, note = A.comparisons(u, runs.margin)
    lines = ["", ("[ORACLE selection] " if runs.oracle else "") + "confirmed test scores (fresh seeds; Δ vs "
             "matched plain fine-tuning, 95% interval and Holm-corrected p of the languages × seeds model):"]
    scored = A._scored(runs)
    for key, first in u.configs.iterrows():
        mine = scored[P.config_keys(scored, u.identity) == key]
        name = P.PLAIN if u.plain[key] else P.label(first, u.searched)
        line = (f"  {name}: test_unseen {mine[runs.col('test_unseen')].mean():.4f}, "
                f"test_seen {mine[runs.col('test_seen')].mean():.4f} over {len(mine)} seed(s) "
                f"(each at its {runs.at} evaluation)")
        row = table[table["configuration"] == P.label(first, u.searched)] if not table.empty else table
        if not u.plain[key] and len(row) and not math.isnan(row.iloc[0]["Δunseen"]):
            r = row.iloc[0]
            line += (f"; Δunseen {r['Δunseen']:+.4f} [{r['Δunseen_lo']:+.4f}, {r['Δunseen_hi']:+.4f}] "
                     f"p={r['p_holm_unseen']:.3g}, {r.get('reading_unseen', '')} (margin ±{runs.margin:g})")
        lines.append(line)
    if note:
        lines.append(f"  ({note})")
    lines += ["", *V.verdict(table, confirmed=True, oracle=runs.oracle, declared=A.declared_label(u, runs),
                             margin=runs.margin, margin_declared=not runs.margin_source.startswith("the default"))]
    return lines


def link(p: Plan, top: int, repeats: int) -> dict:
    """What the confirmation run's record says about its source and what it confirms."""
    return {"source_run": p.source, "confirm": {"top": top, "repeats": repeats, "seeds": p.seeds,
                                                "data_seeds": list(p.data_seeds), "fresh_data": p.fresh_data,
                                                "configurations": [c["config"] for c in p.chosen],
                                                "baselines": p.baselines}}
