"""The trial loop end to end on the real corpus with a tiny encoder: reports, resume, divergence, λ."""

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from alchemy_tune.core import constants as K
from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.trial import checkpoint
from alchemy_tune.trial.checkpoint import CHECKPOINT_FILE
from alchemy_tune.trial.train import StepLosses, build_optimisation, plan_steps, prepare, run_trial


def tiny(tiny_encoder_dir, **changes) -> TrialConfig:
    base = dict(model=tiny_encoder_dir, task="bible-genre", train_size=24, dev_size=12, test_size=12,
                seen=("eng", "fra", "deu"), unseen=("spa", "rus"), batch_size=8, epochs=1.0, evals_per_epoch=3,
                num_layers=None, max_length=48, lr=1e-3, device="cpu")
    base.update(changes)
    return TrialConfig.from_dict(base)


class Recorder:
    """A report callable that keeps every report and copies checkpoints it is handed."""

    def __init__(self, keep_dir: Path | None = None, crash_after: int | None = None):
        self.reports, self.checkpoints = [], []
        self.keep_dir, self.crash_after = keep_dir, crash_after

    def __call__(self, metrics, checkpoint_dir):
        assert checkpoint_dir is None or (Path(checkpoint_dir) / CHECKPOINT_FILE).exists()
        self.reports.append(metrics)
        if checkpoint_dir and self.keep_dir:
            dest = self.keep_dir / f"ckpt-{metrics[K.STEP]}"
            shutil.copytree(checkpoint_dir, dest)
            self.checkpoints.append(dest)
        if self.crash_after is not None and len(self.reports) >= self.crash_after:
            raise KeyboardInterrupt("simulated crash")


def test_trial_reports_per_language_metrics(tiny_encoder_dir):
    rec = Recorder()
    outcome = run_trial(tiny(tiny_encoder_dir, val=("rus",)), rec)
    assert outcome.status == K.COMPLETED
    # 3 seen languages x 24 = 72 examples / batch 8 = 9 steps, eval every 3 steps
    assert [r[K.STEP] for r in rec.reports] == [3, 6, 9]
    assert [r[K.STATUS] for r in rec.reports] == [K.RUNNING, K.RUNNING, K.COMPLETED]
    last = rec.reports[-1]
    assert set(last[K.LANGS]) == {"eng", "fra", "deu", "spa", "rus"}
    assert last[K.LANGS]["spa"]["seen"] is False and last[K.LANGS]["eng"]["seen"] is True
    assert {lang: info["role"] for lang, info in last[K.LANGS].items()} == {
        "eng": "seen", "fra": "seen", "deu": "seen", "rus": "val", "spa": "unseen"}
    assert set(last[K.LANGS]["spa"]["test"]) == {"accuracy", "macro_f1"}
    dev = {lang: info["dev"]["accuracy"] for lang, info in last[K.LANGS].items()}
    test = {lang: info["test"]["accuracy"] for lang, info in last[K.LANGS].items()}
    assert last["dev_unseen"] == pytest.approx(dev["spa"]) and last["test_val"] == pytest.approx(test["rus"])
    assert last["dev_val"] == pytest.approx(dev["rus"]) and last["test_unseen"] == pytest.approx(test["spa"])
    # the selection metric: one value per seen or validation language, then the mean (never spa)
    assert last["dev_select"] == pytest.approx((dev["eng"] + dev["fra"] + dev["deu"] + dev["rus"]) / 4)
    assert last["dev_all"] == pytest.approx(sum(dev.values()) / 5)
    for key in K.AVERAGE_KEYS:
        assert 0.0 <= last[key] <= 1.0
    assert last[K.LAMBDA] == 10.0 and last[K.URIEL_LOSS] > 0
    assert last[K.TRAIN_SECONDS] > 0


@pytest.mark.parametrize("schedule", ["constant", "alchemytune"])
def test_resume_ends_with_the_same_metrics(tiny_encoder_dir, tmp_path, schedule):
    # alchemytune: the learnt weights, their start and their own optimiser group come back too
    config = tiny(tiny_encoder_dir, dropout=0.1, lambda_schedule=schedule, projection="mlp", proj_dropout=0.2)
    full = Recorder()
    run_trial(config, full)
    crashed = Recorder(keep_dir=tmp_path, crash_after=1)
    with pytest.raises(KeyboardInterrupt):
        run_trial(config, crashed)
    resumed = Recorder()
    run_trial(config, resumed, resume_from=str(crashed.checkpoints[0]))
    assert [r[K.STEP] for r in resumed.reports] == [6, 9]
    a, b = full.reports[-1], resumed.reports[-1]
    for key in K.AVERAGE_KEYS + (K.TRAIN_LOSS, K.URIEL_LOSS, K.TASK_WEIGHT, K.URIEL_WEIGHT):
        assert a[key] == pytest.approx(b[key], abs=1e-6, nan_ok=True), key
    assert a[K.LANGS] == b[K.LANGS]


def test_resume_refuses_a_checkpoint_of_another_config(tiny_encoder_dir, tmp_path):
    rec = Recorder(keep_dir=tmp_path, crash_after=1)
    with pytest.raises(KeyboardInterrupt):
        run_trial(tiny(tiny_encoder_dir), rec)
    with pytest.raises(ValueError, match="different config"):
        run_trial(tiny(tiny_encoder_dir, lr=5e-4), Recorder(), resume_from=str(rec.checkpoints[0]))


def test_nan_loss_ends_as_diverged_not_a_crash(tiny_encoder_dir):
    rec = Recorder()
    outcome = run_trial(tiny(tiny_encoder_dir, **{"lambda": 1e39}), rec)
    assert outcome.status == K.DIVERGED
    assert "non-finite loss at step 0" in outcome.reason
    assert rec.reports[-1][K.STATUS] == K.DIVERGED and math.isnan(rec.reports[-1]["dev_unseen"])


@pytest.mark.parametrize("lam, changes", [(10.0, True), (0.0, False)])
def test_projection_is_trained_only_when_lambda_positive(tiny_encoder_dir, tmp_path, lam, changes):
    config = tiny(tiny_encoder_dir, **{"lambda": lam})
    initial = {k: v.clone() for k, v in prepare(config).model.projection.state_dict().items()}
    rec = Recorder(keep_dir=tmp_path)
    run_trial(config, rec)
    state = torch.load(rec.checkpoints[-1] / CHECKPOINT_FILE, weights_only=True)["model"]
    trained = {k.removeprefix("projection."): v for k, v in state.items() if k.startswith("projection.")}
    assert trained.keys() == initial.keys()
    differs = any(not torch.equal(trained[k], initial[k]) for k in initial)
    assert differs is changes
    if lam == 0:
        assert math.isnan(rec.reports[-1][K.URIEL_LOSS])


@pytest.mark.parametrize("schedule", ["warmup", "cosine_decay", "alchemyscale", "alchemytune"])
def test_every_lambda_schedule_trains(tiny_encoder_dir, schedule):
    rec = Recorder()
    config = tiny(tiny_encoder_dir, lambda_schedule=schedule, max_steps=4, evals_per_epoch=1,
                  projection="mlp", proj_sigmoid=True)
    assert run_trial(config, rec).status == K.COMPLETED
    assert math.isfinite(rec.reports[-1][K.LAMBDA]) and rec.reports[-1][K.LAMBDA] > 0


def test_pair_regression_trial(tiny_encoder_dir):
    rec = Recorder()
    config = tiny(tiny_encoder_dir, task="bible-relatedness", max_steps=4, evals_per_epoch=1)
    assert run_trial(config, rec).status == K.COMPLETED
    last = rec.reports[-1]
    assert last[K.PRIMARY_METRIC] == "pearson"
    assert set(last[K.LANGS]["rus"]["test"]) == {"pearson", "spearman"}
    assert -1.0 <= last["test_unseen"] <= 1.0
    # each test pair's predicted and gold score: the language's Pearson recomputed from them
    answers = last[K.ITEMS]["rus"]
    pred, gold = np.asarray(answers["prediction"]), np.asarray(answers["label"])
    assert pred.dtype == float and np.corrcoef(pred, gold)[0, 1] == pytest.approx(last[K.LANGS]["rus"]["test"]["pearson"])


def test_alchemytune_weight_learns_within_200_steps_and_is_logged(tiny_encoder_dir, tmp_path):
    """AlchemyTune learns from unbalanced losses (CE ~1.8 vs URIEL MSE falling from ~0.3 to ~0.03)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from alchemy_tune.results.train_run import TrainRunSink
    from alchemy_tune.results.schema import read_steps

    config = tiny(tiny_encoder_dir, lambda_schedule="alchemytune", epochs=100.0, max_steps=200, eval_every=50)
    first = Recorder()
    run_trial(dataclasses.replace(config, max_steps=1), first)  # the same first batch: the weights' start (1 update)
    start = first.reports[0][K.URIEL_WEIGHT]
    sink = TrainRunSink(str(tmp_path / "run"), config)
    outcome = run_trial(config, lambda metrics, _: sink.report(metrics))
    sink.close(outcome)
    steps = read_steps(str(tmp_path / "run")).to_pylist()
    assert [s["step"] for s in steps] == [50, 100, 150, 200]
    uriel = [s[K.URIEL_WEIGHT] for s in steps]
    assert all(math.isfinite(w) and w > 0 for w in uriel + [s[K.TASK_WEIGHT] for s in steps])
    assert uriel[-1] > 2 * start, (start, uriel)
    for s in steps:  # λ is the ratio of the two weights
        assert s[K.LAMBDA] == pytest.approx(s[K.URIEL_WEIGHT] / s[K.TASK_WEIGHT], rel=1e-6)
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "train"), size_guidance={"scalars": 0})
    acc.Reload()
    logged = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in ("weight/task", "weight/uriel")}
    assert logged["weight/uriel"] == [(s["step"], pytest.approx(s[K.URIEL_WEIGHT], rel=1e-6)) for s in steps]
    assert [step for step, _ in logged["weight/task"]] == [50, 100, 150, 200]


def _record_training(monkeypatch, config: TrialConfig) -> dict:
    """Run a trial and keep, per training forward pass: the batch, the RNG state, every dropout mask."""
    from alchemy_tune.trial import train

    log = {"batches": [], "rng": [], "masks": [], "projections": 0}

    def instrumented(c):
        p = prepare(c)

        def before(module, args):
            if module.training:
                log["batches"].append(args[0].clone())
                log["rng"].append(torch.get_rng_state().clone())

        def mask(module, inputs, output):
            if module.training:
                log["masks"].append((output == 0) & (inputs[0] != 0))

        def projected(module, inputs, output):
            log["projections"] += module.training

        p.model.register_forward_pre_hook(before)
        p.model.projection.register_forward_hook(projected)
        for m in p.model.modules():
            if isinstance(m, torch.nn.Dropout) and m.p > 0 and m not in list(p.model.projection.modules()):
                m.register_forward_hook(mask)
        return p

    monkeypatch.setattr(train, "prepare", instrumented)
    assert run_trial(config, Recorder()).status == K.COMPLETED
    return log


def test_matched_baselines_see_the_same_batches_and_dropout_masks(tiny_encoder_dir, monkeypatch):
    """Matched baselines: trials that differ only in λ / URIEL set / projection share every random draw."""
    base = tiny(tiny_encoder_dir, **{"lambda": 0.0}, dropout=0.2, evals_per_epoch=1)
    variants = [dataclasses.replace(base, lambda_=10.0),
                dataclasses.replace(base, lambda_=1.0, uriel_features="geo", projection="mlp", proj_dropout=0.3)]
    reference = _record_training(monkeypatch, base)
    assert len(reference["batches"]) == 9 and len(reference["masks"]) >= 9
    assert reference["projections"] == 0  # λ = 0: the projection is not even run
    for config in variants:
        other = _record_training(monkeypatch, config)
        assert other["projections"] == 9
        assert all(torch.equal(a, b) for a, b in zip(reference["batches"], other["batches"], strict=True))
        assert all(torch.equal(a, b) for a, b in zip(reference["rng"], other["rng"], strict=True))
        assert all(torch.equal(a, b) for a, b in zip(reference["masks"], other["masks"], strict=True))


def test_pooler_is_loaded_and_trained(tiny_pooler_encoder_dir, tmp_path):
    from safetensors.torch import load_file

    saved = {k: v for k, v in load_file(str(Path(tiny_pooler_encoder_dir) / "model.safetensors")).items()
             if k.startswith("pooler.")}
    assert saved  # the checkpoint has a pooler
    config = tiny(tiny_pooler_encoder_dir, pooling="pooler")
    loaded = prepare(config).model.encoder.pooler.state_dict()
    assert all(torch.equal(loaded[k.removeprefix("pooler.")], v) for k, v in saved.items())
    rec = Recorder(keep_dir=tmp_path)
    assert run_trial(config, rec).status == K.COMPLETED
    state = torch.load(rec.checkpoints[-1] / CHECKPOINT_FILE, weights_only=True)["model"]
    trained = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.pooler.")}
    assert trained.keys() == saved.keys()
    assert all(not torch.equal(trained[k], saved[k]) for k in saved)


def test_the_first_update_of_a_warmup_has_lr_zero(tiny_encoder_dir, tmp_path):
    config = tiny(tiny_encoder_dir, warmup_ratio=0.5, evals_per_epoch=9, max_steps=2)  # 9 steps an epoch
    initial = {k: v.clone() for k, v in prepare(config).model.state_dict().items()}
    rec = Recorder(keep_dir=tmp_path)
    run_trial(config, rec)
    after_first = torch.load(rec.checkpoints[0] / CHECKPOINT_FILE, weights_only=True)["model"]
    after_second = torch.load(rec.checkpoints[1] / CHECKPOINT_FILE, weights_only=True)["model"]
    assert all(torch.equal(after_first[k], initial[k]) for k in after_first)
    assert any(not torch.equal(after_second[k], initial[k]) for k in after_second)


def test_restore_keeps_rng_states_on_the_cpu_whatever_the_device(tiny_encoder_dir, tmp_path):
    """A resume on CUDA crashed: the checkpoint was loaded onto the trial's device, and set_rng_state takes only
    a CPU ByteTensor. The meta device stands in for the GPU: the prepared trial says its device is meta (the
    tensors stay on the CPU, as load_state_dict copies to each parameter's device anyway)."""
    config = tiny(tiny_encoder_dir)
    rec = Recorder(keep_dir=tmp_path, crash_after=1)
    with pytest.raises(KeyboardInterrupt):
        run_trial(config, rec)
    p = prepare(config)
    opt = build_optimisation(p, plan_steps(config, len(p.train)))
    p.device = torch.device("meta")
    seen = []
    real = torch.set_rng_state

    def spy(state):
        seen.append((state.device.type, state.dtype))
        real(state)

    torch.set_rng_state, saved_state = spy, torch.get_rng_state()
    try:
        progress = checkpoint.restore(rec.checkpoints[0], p.model, opt.stateful(), p.config, p.device)
    finally:
        torch.set_rng_state = real
        real(saved_state)
    assert seen == [("cpu", torch.uint8)]
    assert progress.step == 3 and progress.evaluations == 1


def _improving_steps(reports, metric):
    """Steps where ``metric`` reached a new best (ties: the later step, as the results tables choose)."""
    best, chosen = None, []
    for r in reports:
        if best is None or r[metric] >= best:
            best = r[metric]
            chosen.append(r[K.STEP])
    return chosen


@pytest.mark.parametrize("select", [None, ("dev_seen", "max")])
def test_test_is_scored_only_at_chosen_steps_and_the_tables_say_so(tiny_encoder_dir, tmp_path, select):
    from alchemy_tune.results.schema import read_steps, read_trials
    from alchemy_tune.results.writer import ResultsWriter

    rec = Recorder()
    run_trial(tiny(tiny_encoder_dir, evals_per_epoch=5, epochs=2.0, lr=3e-3), rec, select=select)
    metric = select[0] if select else K.SELECT
    chosen = set(_improving_steps(rec.reports, metric)) | {rec.reports[-1][K.STEP]}
    assert len(chosen) < len(rec.reports), "every step improved: the test would show nothing"
    for r in rec.reports:
        assert r[K.TEST_SCORED] is (r[K.STEP] in chosen), r[K.STEP]
        has_test = [("test" in info) for info in r[K.LANGS].values()]
        assert all(has_test) if r[K.TEST_SCORED] else not any(has_test)
        assert math.isnan(r["test_unseen"]) is (not r[K.TEST_SCORED])
        assert not math.isnan(r["dev_unseen"])
    writer = ResultsWriter(str(tmp_path), "run", metric=metric, mode="max", flush_interval_s=math.inf)
    for r in rec.reports:
        writer.add_report("t0", {}, r)
    writer.flush()
    steps = read_steps(str(tmp_path)).to_pylist()
    assert {s["step"] for s in steps if s[K.TEST_SCORED]} == chosen
    trial = read_trials(str(tmp_path)).to_pylist()[0]
    assert trial["best_step"] in chosen and not math.isnan(trial["best_test_unseen"])
    assert trial[K.PRECISION] == "fp32" and trial[K.PEAK_RSS_MB] > 50


def test_selection_never_uses_test():
    from alchemy_tune.core.errors import UsageError
    from alchemy_tune.trial.train import Selection

    with pytest.raises(UsageError, match="test data"):
        Selection("test_unseen", "max")


@pytest.mark.parametrize("every, best, expected", [(1, False, [3, 6, 9]), (2, False, [6]), (3, False, [9])])
def test_checkpoint_cadence(tiny_encoder_dir, tmp_path, every, best, expected):
    rec = Recorder(keep_dir=tmp_path)
    run_trial(tiny(tiny_encoder_dir, checkpoint_every=every, checkpoint_best=best), rec)
    assert [int(c.name.split("-")[1]) for c in rec.checkpoints] == expected


def test_checkpoint_at_each_new_best(tiny_encoder_dir, tmp_path):
    rec = Recorder(keep_dir=tmp_path)
    run_trial(tiny(tiny_encoder_dir, checkpoint_every=100, checkpoint_best=True, evals_per_epoch=5, epochs=2.0,
                   lr=3e-3), rec)
    improving = _improving_steps(rec.reports, K.SELECT)
    assert [int(c.name.split("-")[1]) for c in rec.checkpoints] == improving
    state = torch.load(rec.checkpoints[-1] / CHECKPOINT_FILE, weights_only=True)
    # only what resuming needs: no frozen weights, no evaluation results
    assert set(state) == {"model", "optimizer", "lr_schedule", "lambda", "rng_cpu", "step", "train_seconds",
                          "evaluations", "best", "config"}
    assert not any("word_embeddings" in k for k in state["model"])


def test_resume_after_sparse_checkpoints_continues_the_same_choices(tiny_encoder_dir, tmp_path):
    config = tiny(tiny_encoder_dir, checkpoint_every=2, checkpoint_best=False, deterministic=True)
    full = Recorder()
    run_trial(config, full)
    crashed = Recorder(keep_dir=tmp_path, crash_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_trial(config, crashed)
    assert torch.are_deterministic_algorithms_enabled()
    resumed = Recorder()
    run_trial(dataclasses.replace(config, deterministic=False), resumed, resume_from=str(crashed.checkpoints[0]))
    assert not torch.are_deterministic_algorithms_enabled()  # a reused worker does not inherit it
    assert [r[K.STEP] for r in resumed.reports] == [9]
    a, b = full.reports[-1], resumed.reports[-1]
    assert a[K.LANGS] == b[K.LANGS] and a[K.TEST_SCORED] == b[K.TEST_SCORED]


def test_divergence_is_found_on_the_device_with_its_step():
    losses = StepLosses(torch.device("cpu"))
    one = torch.tensor(1.0)
    for step in range(5):
        losses.add(step, one, one, None)
    assert losses.divergence() is None
    losses.add(5, torch.tensor(math.inf), one, torch.tensor(2.0))
    losses.add(6, torch.tensor(math.nan), one, None)
    step, values = losses.divergence()
    assert step == 5 and values[0] == math.inf and values[2] == 2.0


def _host_reads_from_package(monkeypatch, run):
    """Count tensor-to-host reads (item, bool, float, int, tolist) made by alchemy_tune's own code."""
    import sys

    calls = []
    for name in ("item", "__bool__", "__float__", "__int__", "tolist"):
        real = getattr(torch.Tensor, name)

        def wrapper(self, *a, _real=real, _name=name, **k):
            caller = sys._getframe(1).f_code.co_filename
            if "alchemy_tune" in caller:
                calls.append((_name, caller, sys._getframe(1).f_code.co_name))
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    run()
    monkeypatch.undo()
    return calls


def test_training_steps_do_not_read_the_device(tiny_encoder_dir, monkeypatch):
    """Host reads per step: two trials with one evaluation each, 8 and 40 steps; the 32 extra steps may add
    only the divergence checks (one per 16 steps), not one read (or five, as before) per step."""
    from alchemy_tune.trial.train import DIVERGENCE_CHECK_EVERY

    def trial(steps):
        config = tiny(tiny_encoder_dir, train_size=200, max_steps=steps, epochs=3.0, evals_per_epoch=1,
                      lambda_schedule="alchemyscale", dev_size=6, test_size=6)
        return lambda: run_trial(config, Recorder())

    short = _host_reads_from_package(monkeypatch, trial(8))
    long = _host_reads_from_package(monkeypatch, trial(40))
    extra_checks = 40 // DIVERGENCE_CHECK_EVERY - 8 // DIVERGENCE_CHECK_EVERY
    assert len(long) - len(short) <= extra_checks, sorted(set(long) - set(short))


def test_the_trial_never_imports_ray_or_optuna():
    """The trial is handed a ``report`` callable: it runs the same under any backend (and without one)."""
    import subprocess
    import sys

    code = ("import sys, alchemy_tune.trial.train, alchemy_tune.trial.checkpoint, alchemy_tune.trial.divergence; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'optuna'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_each_test_example_is_reported_stored_and_read_back_at_the_chosen_step(tiny_encoder_dir, tmp_path):
    """Where test is scored the report carries every test example's prediction and label per language (the
    same examples, in the same order, for every trial); their accuracy is the language's test accuracy; the
    tables keep them as rows with an item index, and the reader returns those of each trial's chosen step."""
    from alchemy_tune.results.schema import items_at_steps, read_metrics, read_trials
    from alchemy_tune.results.writer import ResultsWriter

    writer = ResultsWriter(str(tmp_path), "run", metric=K.SELECT, mode="max", flush_interval_s=math.inf)
    labels = {}
    for tid, seed in (("a", 1), ("b", 2)):
        rec = Recorder()
        run_trial(tiny(tiny_encoder_dir, val=("rus",), seed=seed, evals_per_epoch=3, lr=3e-3), rec)
        for r in rec.reports:
            assert (K.ITEMS in r) is r[K.TEST_SCORED], r[K.STEP]
            for lang, answers in r.get(K.ITEMS, {}).items():
                pred, gold = np.asarray(answers["prediction"]), np.asarray(answers["label"])
                assert len(pred) == len(gold) > 0
                assert (pred == gold).mean() == pytest.approx(r[K.LANGS][lang]["test"]["accuracy"])
                assert labels.setdefault(lang, answers["label"]) == answers["label"]  # same examples, same order
            writer.add_report(tid, {}, r)
    writer.flush()
    scores = read_metrics(str(tmp_path)).to_pandas()
    assert scores.loc[scores["metric"] == "accuracy", "item"].isna().all()
    trials = read_trials(str(tmp_path))
    picks = trials.select(["run_id", "trial_id", "best_step"]).rename_columns(["run_id", "trial_id", "step"])
    items = items_at_steps(str(tmp_path), picks).to_pandas()
    assert set(items["trial_id"]) == {"a", "b"} and set(items["lang"]) == set(labels)
    for row in trials.to_pylist():
        mine = items[items["trial_id"] == row["trial_id"]]
        wide = mine.pivot_table(index=["lang", "item"], columns="metric", values="value")
        by_lang = (wide["prediction"] == wide["label"]).groupby(level="lang").mean()
        at_best = scores[(scores["trial_id"] == row["trial_id"]) & (scores["step"] == row["best_step"])
                         & (scores["split"] == "test") & (scores["metric"] == "accuracy")].set_index("lang")["value"]
        assert by_lang.sort_index().to_numpy() == pytest.approx(at_best.sort_index().to_numpy())
        assert mine.groupby("lang")["item"].apply(lambda s: sorted(set(s))).map(len).tolist() == \
            [len(labels[lang]) for lang in sorted(labels)]
    assert items_at_steps(str(tmp_path), picks.slice(0, 0)).num_rows == 0


def test_each_seen_language_reports_the_examples_it_trained_on_group_sizes_included(tiny_encoder_dir):
    """A size is a number in the tables: each seen language's actual count, per language where
    ``group_langs`` sizes some apart (the scaling analysis reads these, not the setting)."""
    from alchemy_tune.core.errors import UsageError

    rec = Recorder()
    config = tiny(tiny_encoder_dir, train_size=16, group_langs=["eng"], group_train_size=32, evals_per_epoch=1)
    assert run_trial(config, rec).status == K.COMPLETED
    langs = rec.reports[-1][K.LANGS]
    assert {lang: info.get(K.TRAIN) for lang, info in langs.items()} == {
        "eng": {K.EXAMPLES: 32}, "fra": {K.EXAMPLES: 16}, "deu": {K.EXAMPLES: 16}, "spa": None, "rus": None}
    assert rec.reports[-1][K.STEP] == (32 + 16 + 16) // 8
    with pytest.raises(UsageError, match="group_langs: spa not among the seen languages"):
        prepare(tiny(tiny_encoder_dir, group_langs=["spa"], group_train_size=8))


def test_a_checkpoint_cut_by_a_crash_restarts_the_trial_from_its_beginning(tiny_encoder_dir, tmp_path, capsys):
    """A checkpoint cut in half (a crash during its save): resuming from it says so and trains the trial
    from its first step to the end, with the scores of an uninterrupted run, instead of crashing on every
    retry and ending failed."""
    config = tiny(tiny_encoder_dir)
    full = Recorder()
    run_trial(config, full)
    crashed = Recorder(keep_dir=tmp_path, crash_after=1)
    with pytest.raises(KeyboardInterrupt):
        run_trial(config, crashed)
    saved = Path(crashed.checkpoints[0]) / CHECKPOINT_FILE
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    resumed = Recorder()
    outcome = run_trial(config, resumed, resume_from=str(crashed.checkpoints[0]))
    assert "checkpoint unreadable" in capsys.readouterr().err
    assert outcome.status == K.COMPLETED and [r[K.STEP] for r in resumed.reports] == [3, 6, 9]
    assert resumed.reports[-1][K.LANGS] == full.reports[-1][K.LANGS]


def test_training_gives_a_sign_of_life_at_least_every_30_seconds(tiny_encoder_dir, monkeypatch):
    """With every training step taking 31 s of (simulated) time, each step calls the heartbeat, with the step,
    the total and the rate; with steps of 10 s, every third. `alchemy-tune train` prints each one."""
    from alchemy_tune.trial import train as train_module

    real_step = train_module._train_step
    for per_step, expected in ((31.0, 9), (10.0, 3)):
        now = [0.0]

        def slow_step(*args, per_step=per_step, now=now):  # each optimiser step takes per_step seconds
            now[0] += per_step
            return real_step(*args)

        monkeypatch.setattr(train_module, "_clock", lambda now=now: now[0])
        monkeypatch.setattr(train_module, "_train_step", slow_step)
        beats = []
        run_trial(tiny(tiny_encoder_dir), Recorder(), heartbeat=beats.append)
        assert len(beats) == expected, (per_step, beats)
        assert beats[-1]["total_steps"] == 9 and beats[0]["phase"] == "training" and beats[0]["examples_per_second"] > 0
