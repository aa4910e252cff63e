"""Analysis of one or more runs: the tables behind ``alchemy-tune analyze``.

Every function takes the loaded :class:`Runs` and returns a pandas DataFrame (possibly empty) plus,
where something could not be computed, a note saying why. Scores are higher-is-better averages
(accuracy, Pearson) taken at one evaluation per trial, by one rule for every comparison: the **final
evaluation** (``--at final``, the default). A configuration and its plain fine-tuning twin train for the same
steps, so the rule scores both at the same step, chosen without any data; letting each twin pick its own best
dev step puts the noise of two independent choices into Δ. Each trial's own best step (``best_step``, chosen
by the run's selection metric, never by test data) stays available: ``--at best`` uses it throughout, and the
report's sensitivity table compares the headline at it. Configurations are compared with their matched
baselines in :mod:`alchemy_tune.analysis.paired`; plots live in ``plots.py``, the report and CLI in
``analysis/report.py``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from alchemy_tune.core.constants import ORACLE_PREFIX
from alchemy_tune.core import constants as C
from alchemy_tune.languages import langinfo
from alchemy_tune.analysis import paired as P
from alchemy_tune.core.errors import UsageError
from alchemy_tune.core.numbers import is_finite_number
from alchemy_tune.analysis.stats import DEFAULT_MARGIN, DEFAULT_MARGINS
from alchemy_tune.results.schema import items_at_steps, read_trials, values_at_steps
from alchemy_tune.results.run_record import RunRecord
from alchemy_tune.analysis.stored_space import stored_space



@dataclass
class Runs:
    """Trials of every run analysed together, and each trial's per-language scores."""

    dirs: list[str]
    metric: str
    at: str
    trials: pd.DataFrame
    langs: pd.DataFrame
    """run_id, trial_id, split, lang, uriel_code, seen, role, value (primary metric at the selected step)."""
    notes: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    """run_id -> the run's kind in alchemy_run.json (search, confirm, train)."""
    selections: list[str] = field(default_factory=list)
    """The selection metric of each run (alchemy_run.json ``metric``)."""
    declared: list[dict] = field(default_factory=list)
    """The configurations confirmation runs chose before running, best first (alchemy_run.json ``confirm``)."""
    space: object = None
    """The first search run's space (which parameters apply where), None when its file is not found."""
    primary: dict | None = None
    """The first search run's declared headline comparison (``search.primary``), None: every configuration."""
    margin: float = math.nan
    """The equivalence margin: ``analyze --margin``, else the first search run's ``search.margin``, else the
    primary metric's default (:data:`alchemy_tune.analysis.stats.DEFAULT_MARGINS`)."""
    margin_source: str = ""
    other_langs: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The per-language values at the other rule (each trial's own best step when ``at`` is final), for the
    sensitivity table; the same columns as ``langs``."""

    @property
    def average(self) -> str:
        """The average that ranks trials (``oracle_dev_unseen`` ranks by ``dev_unseen``)."""
        return self.metric.removeprefix(ORACLE_PREFIX)

    @property
    def split(self) -> str:
        return self.average.split("_")[0]

    def col(self, key: str) -> str:
        """Trials column of an average at the evaluation that scores each trial: ``col("test_unseen")``."""
        return f"{self.at}_{key}"

    @staticmethod
    def rank_col(key: str) -> str:
        """Trials column of an average at each trial's best step: what ranks trials and configurations, as
        the sampler and ``confirm`` rank them (dev data only), whichever step scores the comparisons."""
        return f"best_{key}"

    @property
    def score(self) -> str:
        return self.rank_col(self.average)

    @property
    def oracle(self) -> bool:
        """Whether any trial (or the ranking asked for) selected on test-language dev data."""
        t = self.trials
        flagged = bool(t["oracle"].fillna(False).astype(bool).any()) if "oracle" in t else False
        names = t["selection_metric"].dropna().astype(str) if "selection_metric" in t else pd.Series([], dtype=str)
        chosen = [*names, *self.selections, self.metric]
        # the test languages' own dev sets (in dev_unseen, dev_all) choosing anything makes these oracle results
        return flagged or any(str(m).startswith(ORACLE_PREFIX) or str(m).endswith(("_unseen", "_all"))
                              for m in chosen)

    @property
    def confirm_runs(self) -> list[str]:
        return [run for run, kind in self.kinds.items() if kind == "confirm"]

    def part(self, confirm: bool) -> "Runs":
        """The confirmation runs alone (``confirm``), or every other run alone: the search's tables never
        hold a confirmation trial, and the confirmation's never a search trial (its seeds are the fresh
        ones that make it an unbiased test of what the search chose)."""
        wanted = set(self.confirm_runs)
        keep = self.trials["run_id"].isin(wanted) == confirm
        langs = self.langs[self.langs["run_id"].isin(wanted) == confirm] if len(self.langs) else self.langs
        other = (self.other_langs[self.other_langs["run_id"].isin(wanted) == confirm] if len(self.other_langs)
                 else self.other_langs)
        return dataclasses.replace(self, trials=self.trials[keep], langs=langs, other_langs=other)

    def items(self, pairs: pd.DataFrame) -> pd.DataFrame:
        """Each test example's answers of the trials in ``pairs`` (run_id, trial_id) at their selected steps."""
        t = self.trials.merge(pairs[["run_id", "trial_id"]].drop_duplicates(), on=["run_id", "trial_id"])
        frames = []
        for run_dir, mine in t.groupby("run_dir"):
            picks = pa.Table.from_pandas(mine[["run_id", "trial_id", f"{self.at}_step"]].dropna().rename(
                columns={f"{self.at}_step": "step"}).astype({"step": "int64"}), preserve_index=False)
            frames.append(items_at_steps(str(run_dir), picks).to_pandas())
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def scores(self, split: str) -> pd.DataFrame:
        """Per-language values of one split (``test``, ``dev``)."""
        return self.langs[self.langs["split"] == split] if "split" in self.langs else self.langs


# ----------------------------------------------------------------------------- loading
AT = ("final", "best")
"""The evaluation of each trial that scores it: the rule for a pair (final) first."""


def load_runs(run_dirs: list[str], *, metric: str | None = None, at: str = "final", space_of=None,
              margin: float | None = None) -> Runs:
    """Read every run; UsageError (one line) for a missing folder, a non-run, a newer schema, no trials.

    ``metric`` ranks trials and configurations; None = the runs' own selection metric. ``space_of(record,
    run_dir)`` gives a run's search space (the parameters' conditions and kinds); by default the one its
    record stores.
    """
    space_of = space_of or stored_space
    if at not in AT:
        raise UsageError(f"--at: {at!r} is not one of {', '.join(AT)}")
    if margin is not None and not (is_finite_number(margin) and 0 < margin < 1):
        raise UsageError(f"--margin: expected a number in (0, 1) (0.01 = one accuracy point), got {margin!r}")
    other = "best" if at == "final" else "final"
    trials, langs, notes, kinds, selections, declared, space, primary = [], [], [], {}, [], [], None, None
    declared_margin, other_langs = None, []
    for run_dir in run_dirs:
        record = RunRecord.read(run_dir)
        kinds[record.run_id or run_dir] = record.kind
        selections.append(record.metric)
        declared += (record.extra.get("confirm") or {}).get("configurations") or []
        if record.kind != "confirm" and space is None:
            space = space_of(record, run_dir)
        if record.kind != "confirm" and primary is None and record.settings.primary:
            primary = dict(record.settings.primary)
        if declared_margin is None and record.settings.margin:  # a confirmation keeps its source's margin
            declared_margin = float(record.settings.margin)
        table = read_trials(run_dir)
        if table.num_rows == 0:
            notes.append(f"{run_dir}: no trial has reported yet")
            continue
        frame = table.to_pandas()
        frame["run_dir"] = run_dir
        frame["run_id"] = frame["run_id"].fillna(record.run_id or run_dir)
        frame[TRAIN_EXAMPLES] = _train_examples(run_dir, table, frame, at)
        trials.append(frame)
        mine, theirs = _lang_scores(run_dir, table, at, other)
        langs.append(mine)
        other_langs.append(theirs)
    if not trials:
        raise UsageError(f"{', '.join(run_dirs)}: empty run(s): no trial results yet "
                         "(results/trials/)")
    frame = pd.concat(trials, ignore_index=True, sort=False)
    _one_question(frame)
    lang_frame = pd.concat(langs, ignore_index=True) if langs else pd.DataFrame()
    metric = metric or _selection_metric(frame, selections)
    if metric.startswith("test_"):
        raise UsageError(f"--metric: {metric!r} would rank configurations on test data; use a dev_* average")
    averages = sorted(c.removeprefix("best_") for c in frame.columns if c.startswith("best_")
                      and c != "best_step" and not c.startswith("best_test_"))  # test never ranks
    if f"best_{metric.removeprefix(ORACLE_PREFIX)}" not in frame:
        raise UsageError(f"--metric: {metric!r} is not an average of these runs; valid: {', '.join(averages)}")
    primary_metric = next(iter(frame["primary_metric"].dropna()), "accuracy") if "primary_metric" in frame \
        else "accuracy"
    if margin is not None:
        chosen, source = float(margin), "--margin"
    elif declared_margin is not None:
        chosen, source = declared_margin, "declared by the space (search.margin)"
    else:
        chosen = DEFAULT_MARGINS.get(primary_metric, DEFAULT_MARGIN)
        source = f"the default for {primary_metric} (the space declared none)"
    runs = Runs(list(run_dirs), metric, at, frame, lang_frame, notes, kinds, [m for m in selections if m],
                declared, space, primary, chosen, source,
                pd.concat(other_langs, ignore_index=True) if other_langs else pd.DataFrame())
    runs.notes += status_notes(runs)
    if runs.oracle:
        runs.notes.insert(0, "ORACLE: trials were selected or ranked on test-language dev data "
                          f"({metric}); these are not zero-shot results")
    return runs


def _one_question(frame: pd.DataFrame) -> None:
    """Runs of different tasks or primary metrics (accuracy, Pearson) cannot share one leaderboard."""
    for column, what in (("cfg_task", "task"), ("primary_metric", "primary metric")):
        if column not in frame:
            continue
        kinds = frame.dropna(subset=[column]).groupby(column)["run_dir"].first()
        if len(kinds) > 1:
            listed = "; ".join(f"{run} ({what} {value})" for value, run in kinds.items())
            raise UsageError(f"runs of different {what}s cannot be ranked together: {listed}; analyze them "
                             "apart")


def _selection_metric(trials: pd.DataFrame, from_meta: list) -> str:
    """The runs' selection metric: the trials' ``selection_metric``, else alchemy_run.json's ``metric``."""
    if "selection_metric" in trials and trials["selection_metric"].notna().any():
        return str(trials["selection_metric"].dropna().mode().iloc[0])
    named = [m for m in from_meta if m]
    return named[0] if named else "dev_unseen"


def _lang_scores(run_dir: str, trials: pa.Table, at: str, other: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-language primary-metric values (dev and test) at each trial's step by the rule ``at``, and by
    the ``other`` rule, with each language's role, streamed from the metrics files in one pass: only the
    chosen rows of each split are kept, so memory follows trials × languages, not the table (see
    :func:`alchemy_tune.results.schema.values_at_steps`)."""
    out_cols = ["run_id", "trial_id", "split", "lang", "uriel_code", "seen", "role", "value"]
    names = ["run_id", "trial_id", "step", "metric"]
    rules = {rule: trials.select(["run_id", "trial_id", f"{rule}_step", "primary_metric"]).rename_columns(names)
             for rule in (at, other)}
    rules = {rule: t.filter(pc.field("step").is_valid() & pc.field("metric").is_valid()) for rule, t in rules.items()}
    both = pa.concat_tables(list(rules.values())).group_by(names).aggregate([])
    frames = []
    for split in ("dev", "test"):
        frame = values_at_steps(run_dir, both, split, with_step=True).to_pandas()
        frame["split"] = split
        frames.append(frame)
    found = pd.concat(frames, ignore_index=True)
    out = []
    for rule in (at, other):
        keys = rules[rule].select(["run_id", "trial_id", "step"]).to_pandas()
        out.append(found.merge(keys, on=["run_id", "trial_id", "step"])[out_cols])
    return out[0], out[1]


TRAIN_EXAMPLES = "train_examples"
"""Trials column of ``analyze``: examples per language the trial trained on, a number even where
``train_size`` is None (all the data) or capped by the corpus: the median over the seen languages
``train_size`` sizes (``group_langs`` keep their own size), from the metrics table's ``train`` rows;
``cfg_train_size`` for runs written before those rows."""


def _train_examples(run_dir: str, trials: pa.Table, frame: pd.DataFrame, at: str) -> pd.Series:
    picks = trials.select(["run_id", "trial_id", f"{at}_step"]).rename_columns(["run_id", "trial_id", "step"])
    picks = picks.filter(pc.field("step").is_valid())
    picks = picks.append_column("metric", pa.array([C.EXAMPLES] * picks.num_rows, pa.string()))
    counts = values_at_steps(run_dir, picks, C.TRAIN).to_pandas()
    declared = pd.to_numeric(frame["cfg_train_size"], errors="coerce") if "cfg_train_size" in frame \
        else pd.Series(math.nan, index=frame.index)
    if counts.empty:
        return declared.astype(float)
    group = frame["cfg_group_langs"] if "cfg_group_langs" in frame else pd.Series(None, index=frame.index)
    apart = {(r, t): set(g) if isinstance(g, (list, tuple, np.ndarray)) else set()
             for r, t, g in zip(frame["run_id"], frame["trial_id"], group)}
    counts = counts[[lang not in apart.get((r, t), set())
                     for r, t, lang in zip(counts["run_id"], counts["trial_id"], counts["lang"])]]
    median = counts.groupby(["run_id", "trial_id"])["value"].median()
    found = pd.Series([median.get((r, t), math.nan) for r, t in zip(frame["run_id"], frame["trial_id"])],
                      index=frame.index, dtype=float)
    return found.fillna(declared.astype(float))


def status_notes(runs: Runs) -> list[str]:
    """What is missing: trials still running, failed (with their errors), pruned, without scores."""
    t, notes = runs.trials, []
    counts = t["status"].value_counts()
    notes.append("trials: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if "matched_baseline" in t and t["matched_baseline"].fillna(False).astype(bool).any():
        twins = t[t["matched_baseline"].fillna(False).astype(bool)]["status"].value_counts()
        notes.append(f"{int(twins.sum())} of them are matched plain fine-tuning baselines the search added "
                     f"(search.baselines: matched): " + ", ".join(f"{n} {s}" for s, n in twins.items())
                     + "; one whose configurations all ended without completing was stopped as pruned")
    if counts.get(C.RUNNING, 0):
        notes.append(f"{counts[C.RUNNING]} trial(s) still running: their scores are provisional")
    for _, row in t[t["status"] == C.FAILED].iterrows():
        last_line = (str(row.get("error") or "").strip().splitlines() or ["no error text"])[-1]
        notes.append(f"failed {row['run_id']}/{row['trial_id']}: {last_line[:160]}")
    if runs.score in t:
        missing = int(t[runs.score].isna().sum())
        if missing:
            notes.append(f"{missing} trial(s) have no {runs.metric} value and are left out of the tables")
    unfinished = int((~t["status"].isin([C.COMPLETED, C.DIVERGED])).sum())
    if unfinished and unfinished < len(t):
        notes.append(f"summary tables use finished (completed/diverged) trials only; the leaderboard "
                     f"also lists the {unfinished} running, pruned or failed one(s)")
    return notes


# ----------------------------------------------------------------------------- statistics
# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: a series in 1/df);
# kept here because importing scipy.stats or scipy.special costs more than the whole analysis.
def _scored(runs: Runs, *, finished: bool = True) -> pd.DataFrame:
    """Trials with a score; with ``finished``, only those that ran to the end (completed or diverged)
    when there are any, since a pruned, failed or running trial's score is from a shorter training."""
    t = runs.trials
    t = t[t[runs.score].notna()] if runs.score in t else t.iloc[0:0]
    done = t[t["status"].isin([C.COMPLETED, C.DIVERGED])]
    return done if finished and len(done) else t


# ----------------------------------------------------------------------------- tables
def leaderboard(runs: Runs, top: int = 10) -> pd.DataFrame:
    t = _scored(runs, finished=False).sort_values(runs.score, ascending=False).head(top)
    split = runs.split
    cols = {"run_id": "run", "trial_id": "trial", "status": "status", runs.score: runs.metric,
            runs.rank_col(f"{split}_seen"): f"{split}_seen", runs.rank_col(f"{split}_unseen"): f"{split}_unseen",
            "best_step": "step", "config_id": "config", "replicate": "replicate", "cfg_lambda": "lambda",
            "cfg_lambda_schedule": "schedule", "cfg_uriel_features": "uriel_features",
            "cfg_projection": "projection", "cfg_train_size": "train_size", "cfg_lr": "lr",
            "cfg_seed": "seed"}
    cols = {k: v for k, v in cols.items() if k in t}
    out = t[list(dict.fromkeys(cols))].rename(columns=cols).reset_index(drop=True)
    out.insert(0, "rank", range(1, len(out) + 1))
    if runs.oracle:
        out.insert(1, "selection", "oracle")
    return out


def units(runs: Runs, *, split: str = "test", other_rule: bool = False, trials: pd.DataFrame | None = None
          ) -> P.Units:
    """Finished trials' per-language ``split`` scores, keyed for pairing, with their test examples;
    ``other_rule``: the scores at the other evaluation rule (the sensitivity table's); ``trials``: these
    trials only (a subset of the runs' finished ones)."""
    t = _scored(runs) if trials is None else trials
    t = t[t["status"].isin([C.COMPLETED, C.DIVERGED])]
    if other_rule:
        other = "best" if runs.at == "final" else "final"
        scores = runs.other_langs[runs.other_langs["split"] == split] if len(runs.other_langs) else runs.other_langs
        return P.Units(t, scores, score_col=runs.score, step_col=f"{other}_step")
    return P.Units(t, runs.scores(split), score_col=runs.score, items=runs.items, step_col=f"{runs.at}_step")


def declared_label(u: P.Units, runs: Runs) -> str | None:
    """The label of the configuration a confirmation ranked first before it ran (None: no confirmation)."""
    for config in runs.declared[:1]:
        for first in u.records.values():
            if all(P.hashable(first.get(f"cfg_{k}")) == P.hashable(v) for k, v in config.items()
                   if f"cfg_{k}" in first):
                return P.label(first, u.searched)
    return None


def comparisons(u: P.Units, margin: float | None = None) -> tuple[pd.DataFrame, str | None]:
    """Every configuration against its matched plain fine-tuning baseline (test-split scores)."""
    if "cfg_lambda" not in u.trials:
        return pd.DataFrame(), "no cfg_lambda column: cannot tell plain fine-tuning apart"
    table = P.baseline_comparisons(u, margin=margin)
    if table.empty:
        return table, "every configuration is plain fine-tuning (λ=0): nothing to compare"
    missing = int((table["baseline"] != "matched").sum())
    note = (f"{missing} configuration(s) have no matched baseline: no Δ is shown for them (an unpaired "
            "difference would mix in other settings)") if missing else None
    return table, note


def dimensions(u: P.Units, space=None, margin: float | None = None) -> tuple[dict[str, tuple[pd.DataFrame, str | None]], list[str]]:
    """For every searched setting but λ (compared in ``comparisons``) that takes a few discrete values: its
    values against the reference; and a note per continuous setting, which gets no such table (pairing
    three arbitrary draws of a learning rate against a fourth says nothing)."""
    out, skipped = {}, []
    for c in u.searched:
        if c == "cfg_lambda":
            continue
        if continuous(u.configs[c], u.configs["_base"], getattr(space, "params", {}).get(P.short(c))):
            skipped.append(P.short(c))
            continue
        out[P.short(c)] = P.dimension_comparisons(u, c, margin=margin)
    return out, skipped


def continuous(values: pd.Series, groups: pd.Series, spec=None) -> bool:
    """Whether a setting was drawn from a range: the space says so, or, without the space, it looks it (a
    number with more than 8 values, nearly one per configuration apart from the URIEL settings)."""
    if spec is not None:
        return spec.values() is None
    present = values.dropna()
    numeric = pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present)
    distinct = present.nunique()
    return bool(numeric and distinct > 8 and distinct >= 0.8 * groups.nunique())


def config_key(u: P.Units, row: pd.Series) -> str | None:
    """The Units key of a comparisons row (rows are labelled by their configuration)."""
    for key, first in u.records.items():
        if P.label(first, u.searched) == row["configuration"]:
            return key
    return None


def per_language_scores(u: P.Units, key: str | None, name: str) -> pd.DataFrame:
    """Mean test score per language of the focus configuration and of its matched plain fine-tuning,
    over their common seeds."""
    if key is None:
        return pd.DataFrame()
    treated, base = u.of_config(key), u.baseline_of(key)
    rows = []
    for role in u.roles:
        if role not in treated or role not in base:
            continue
        seeds = treated[role].columns.intersection(base[role].columns)
        rows.append(pd.DataFrame({P.PLAIN: base[role][seeds].mean(axis=1), name: treated[role][seeds].mean(axis=1)})
                    .assign(role=role).rename_axis("lang").reset_index())
    if not rows:
        return pd.DataFrame()
    table = pd.concat(rows, ignore_index=True)
    table.insert(0, "language", [langinfo.label(lang, lang) for lang in table["lang"]])
    table["seen"] = table["role"] == "seen"
    order = table["role"].map({role: i for i, role in enumerate(P.ROLE_ORDER)})
    return table.assign(_o=order).sort_values(["_o", "lang"]).drop(columns="_o").reset_index(drop=True)


def pareto_front(runs: Runs) -> pd.DataFrame:
    """Trials no other trial beats on both seen and unseen score."""
    seen, unseen = runs.rank_col(f"{runs.split}_seen"), runs.rank_col(f"{runs.split}_unseen")
    t = _scored(runs)
    t = t[t[seen].notna() & t[unseen].notna()]
    if t.empty:
        return pd.DataFrame()
    pts = t[[seen, unseen]].to_numpy()
    keep = [not np.any(np.all(pts >= p, axis=1) & np.any(pts > p, axis=1)) for p in pts]
    front = t[keep].sort_values(seen)
    cols = {"run_id": "run", "trial_id": "trial", seen: "seen", unseen: "unseen", "cfg_lambda": "lambda",
            "cfg_uriel_features": "uriel_features"}
    return front[[c for c in cols if c in front]].rename(columns=cols).reset_index(drop=True)
