"""One LinguAlchemy trial: a plain PyTorch loop, handed a ``report`` callable (it never imports Ray).

Reads top to bottom in phases: prepare (task, URIEL targets, encoder, tokens), build the optimiser,
restore a checkpoint if given, then per step: batch (built ahead on a helper thread) -> forward -> losses
-> λ-combined loss -> backward, clip, step; every few steps one look at the divergence flag kept on the
device; every eval interval: score dev, score test if this is a newly chosen step (or the last), report,
checkpoint at the configured cadence (checkpoint.py). The step itself never waits for the GPU (divergence.py).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import tempfile
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional

import numpy as np
import torch

from alchemy_tune.trial import checkpoint
from alchemy_tune.core import constants as K
from alchemy_tune.trial import optim
from alchemy_tune.trial.batching import (Encoded, collate, concat, encode, epoch_batches, eval_batches,
                                         prefetch, remap)
from alchemy_tune.trial.checkpoint import Progress
from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.trial.cost import Timings
from alchemy_tune.trial.divergence import DIVERGENCE_CHECK_EVERY, StepLosses
from alchemy_tune.trial.device import (PeakMemory, autocast, choose_precision, pick_device,
                                       release_free_memory, set_determinism)
from alchemy_tune.trial.encoder import load_encoder, load_tokenizer, shrink_vocabulary
from alchemy_tune.core.errors import UsageError
from alchemy_tune.trial.lambdas import LambdaSchedule
from alchemy_tune.trial.metrics import averages, notes as metric_notes, score
from alchemy_tune.trial.model import AlchemyModel, task_loss, uriel_loss
from alchemy_tune.tasks import Task, load_task
from alchemy_tune.languages import controls
from alchemy_tune.languages.vectors import load_table

Report = Callable[[dict, Optional[str]], None]
Heartbeat = Callable[[dict], None]
"""Called at least every :data:`HEARTBEAT_S` seconds of training with {phase, step, total_steps,
examples_per_second, seconds}: a sign of life between evaluations for a console (never for the tables)."""
HEARTBEAT_S = 30.0
_clock = time.monotonic  # the heartbeat's clock (a test makes it run fast)


@dataclass
class TrialOutcome:
    status: str
    reason: str = ""
    metrics: dict = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)


@dataclass
class Prepared:
    """Everything built before the first step; ``prepare`` is also what the CLI's dry run and tests use."""

    config: TrialConfig
    task: Task
    languages: list[str]
    uriel_codes: list[str]
    uriel: torch.Tensor  # [n_languages, dim] targets, row = index in ``languages``
    model: AlchemyModel
    train: Encoded
    evals: dict[str, Encoded]  # "dev"/"test" -> all languages concatenated
    device: torch.device
    pad_id: int  # in the model's (possibly shrunk) vocabulary
    precision: str = "fp32"  # what autocast runs: device.choose_precision


def prepare(config: TrialConfig) -> Prepared:
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    set_determinism(config.deterministic)
    task = load_task(config.task, config.task_options())
    languages = list(task.languages)
    codes = [task.uriel_codes[lang] for lang in languages]
    table = load_table(config.uriel_source)
    vectors = table.vectors(config.uriel_features, codes, missing=config.missing)
    if config.uriel_control != "none":  # the same loss against vectors without the typology
        vectors = controls.apply(config.uriel_control, vectors, table.observed(config.uriel_features, codes),
                                 codes, config.data_seed)
    uriel = torch.as_tensor(vectors)

    # Tokenise everything first and let the tokenizer go (285 MB for e5's), then load the encoder: the two
    # never share the process's peak.
    train, evals, pad_id = _tokenise(config, task, languages)
    release_free_memory()
    encoder, _ = load_encoder(config.model, num_layers=config.num_layers,
                              freeze_embeddings=config.freeze_embeddings,
                              pooler=config.pooling == "pooler", tokenizer=False)
    if config.freeze_embeddings:  # the embedding rows no example uses can never matter: drop them
        sequences = itertools.chain([[pad_id]], *(d.input_ids for d in (train, *evals.values())))
        used = np.fromiter(itertools.chain.from_iterable(sequences), np.int64)
        mapping = shrink_vocabulary(encoder, used)
        train, evals, pad_id = remap(train, mapping), {k: remap(v, mapping) for k, v in evals.items()}, int(mapping[pad_id])
    model = build_model(encoder, task.num_labels, uriel.shape[1], config).to(device)
    release_free_memory()  # the full encoder was loaded and cut down: return the scratch
    return Prepared(config, task, languages, codes, uriel.to(device), model, train, evals, device,
                    pad_id, choose_precision(device, config.bf16))


def _tokenise(config: TrialConfig, task: Task, languages: list[str]):
    """(train, {split: eval data}, pad id); the tokenizer is freed when this returns."""
    tokenizer = load_tokenizer(config.model)
    index = {lang: i for i, lang in enumerate(languages)}

    def encode_split(split: str, langs) -> Encoded:
        examples = task.split(split)
        return concat([encode(tokenizer, examples[lang], index[lang], config.max_length, task.kind)
                       for lang in langs if examples.get(lang)])

    return (encode_split("train", task.seen), {s: encode_split(s, languages) for s in K.SPLITS_EVALUATED},
            tokenizer.pad_token_id)


def build_model(encoder, num_labels: int, uriel_dim: int, config: TrialConfig) -> AlchemyModel:
    """The heads seeded by ``seed`` on a forked RNG, then the training stream seeded by ``seed`` alone.

    Initialising the projection draws from the RNG in proportion to its size (URIEL dims, MLP or linear):
    without the fork, a λ = 0 baseline and a λ > 0 trial of the same seed would see different dropout
    masks, and the pair would be less matched than it looks.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = AlchemyModel(encoder, num_labels, uriel_dim, config)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    return model


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.inference_mode()  # no autograd bookkeeping at all (no_grad still tracks versions)
def predict(p: Prepared, data: Encoded, batch_size: int) -> np.ndarray:
    """Predicted class ids (classification) or scores (regression), in the order of ``data``."""
    p.model.eval()
    pad_id = p.pad_id
    out = np.zeros(len(data), dtype=np.float64)
    for indices in eval_batches(data, batch_size):
        batch = _to(collate(data, indices, pad_id), p.device)
        with autocast(p.device, p.precision):
            logits, _ = p.model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                                project=False)
        pred = logits.argmax(-1) if p.task.kind == "classification" else logits.squeeze(-1)
        out[np.asarray(indices)] = pred.float().cpu().numpy()
    p.model.train()
    return out


def evaluate(p: Prepared, splits=K.SPLITS_EVALUATED) -> dict:
    """Per-language metrics on ``splits``, and the per-role averages of the primary metric.

    Averages: ``<split>_<group>`` for the seen / val / unseen (test) languages and all of them, and
    ``dev_select`` (mean dev over seen ∪ val languages), the default selection metric. The averages of a
    split not scored are NaN, so every report has the same keys.
    """
    langs: dict[str, dict] = {
        lang: {"uriel": code, "seen": lang in p.task.seen, "role": p.task.role(lang)}
        for lang, code in zip(p.languages, p.uriel_codes)
    }
    counts = np.bincount(p.train.lang_index, minlength=len(p.languages)) if len(p.train) else None
    for i, lang in enumerate(p.languages):
        if lang in p.task.seen and counts is not None:
            langs[lang][K.TRAIN] = {K.EXAMPLES: int(counts[i])}
    result: dict[str, Any] = {key: math.nan for key in K.AVERAGE_KEYS}
    notes: list[str] = []
    items: dict[str, dict] = {}
    primary = p.task.primary_metric
    for split in splits:
        data = p.evals[split]
        if not len(data):
            continue
        pred = predict(p, data, p.config.batch_size * 2)
        for i, lang in enumerate(p.languages):
            mask = data.lang_index == i
            if mask.any():
                langs[lang][split] = score(p.task.kind, data.labels[mask], pred[mask])
                why = metric_notes(p.task.kind, data.labels[mask], pred[mask])
                notes += [f"{split} {lang}: {n}" for n in why]
                if split == "test":  # each example's answer: per-language intervals resample the examples
                    items[lang] = {"prediction": pred[mask].tolist(), "label": data.labels[mask].tolist()}
    result.update(averages(langs, primary))
    result[K.LANGS] = langs
    if items:
        result[K.ITEMS] = items
    result[K.PRIMARY_METRIC] = primary
    result[K.NOTES] = notes
    return result


def compute_losses(p: Prepared, batch: dict, schedule: LambdaSchedule, step: int):
    """(combined loss, task loss, URIEL loss or None when λ is 0) for one training batch."""
    with autocast(p.device, p.precision):
        # λ = 0: the projection is not even run (the baseline is plain fine-tuning)
        logits, projected = p.model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                                    project=schedule.uses_uriel, step=step)
    l_task = task_loss(p.task.kind, logits, batch["labels"])
    if projected is None:
        return l_task, l_task, None
    l_uriel = uriel_loss(projected, p.uriel[batch["lang_index"]])
    return schedule.combine(l_task, l_uriel, step), l_task, l_uriel


# ----------------------------------------------------------------------------- the parts of a run
@dataclass(frozen=True)
class Plan:
    steps_per_epoch: int
    total_steps: int
    eval_every: int


def plan_steps(config: TrialConfig, n_train: int) -> Plan:
    total_steps, steps_per_epoch = optim.total_steps(config, n_train)
    return Plan(steps_per_epoch, total_steps, optim.eval_interval(config, steps_per_epoch))


@dataclass
class Optimisation:
    """What a step updates and a checkpoint holds besides the model."""

    schedule: LambdaSchedule
    optimizer: torch.optim.Optimizer
    lr_schedule: Any
    params: list

    def stateful(self) -> dict[str, Any]:
        """What a checkpoint saves and restores, by the name it has in the checkpoint."""
        return {"optimizer": self.optimizer, "lr_schedule": self.lr_schedule, "lambda": self.schedule}


def build_optimisation(p: Prepared, plan: Plan) -> Optimisation:
    config, total_steps = p.config, plan.total_steps
    schedule = LambdaSchedule(config.lambda_schedule, config.lambda_, total_steps,
                              config.lambda_warmup, config.scale_interval, config.tune_floor).to(p.device)
    params = [prm for prm in p.model.parameters() if prm.requires_grad]
    optimizer, lr_schedule = optim.build_optimizer(p.model, schedule, config, total_steps)
    return Optimisation(schedule, optimizer, lr_schedule, params)


@dataclass(frozen=True)
class Selection:
    """The dev average that chooses a trial's best step (the run's metric), and its direction.

    Ties go to the later step, as in the results tables (results.py), so both name the same step.
    """

    metric: str = K.SELECT
    mode: str = "max"

    def __post_init__(self):
        if self.metric.startswith("test_"):
            raise UsageError(f"selection metric: {self.metric!r} would choose on test data; use a dev metric")
        if self.mode not in ("max", "min"):
            raise UsageError(f"selection mode: {self.mode!r} is not one of max, min")

    def improves(self, value: Any, best: float | None) -> bool:
        if not isinstance(value, (int, float)) or math.isnan(value):
            return False
        return best is None or (value >= best if self.mode == "max" else value <= best)


def _batches(p: Prepared, plan: Plan, start: int) -> Iterator[dict]:
    """Training batches from step ``start`` on, collated (and pinned on CUDA) ahead on a helper thread."""
    config, pad_id = p.config, p.pad_id
    pad_to = config.max_length if config.pad_to_max_length else None
    pin = p.device.type == "cuda"
    cache: dict[int, list[list[int]]] = {}

    def make(step: int) -> dict:
        epoch, position = divmod(step, plan.steps_per_epoch)
        if epoch not in cache:
            cache.clear()
            cache[epoch] = epoch_batches(p.train, config.batch_size, seed=config.seed, epoch=epoch,
                                         group_by_length=config.group_by_length)
        batch = collate(p.train, cache[epoch][position], pad_id, pad_to)
        return {k: v.pin_memory() for k, v in batch.items()} if pin else batch

    return prefetch(make, range(start, plan.total_steps))


def _diverged(p: Prepared, opt: Optimisation, losses: StepLosses, seconds: float, report: Report) -> TrialOutcome | None:
    found = losses.divergence()
    if found is None:
        return None
    step, (loss, l_task, l_uriel) = found
    reason = f"non-finite loss at step {step}: loss={loss}, task_loss={l_task}, uriel_loss={l_uriel}"
    metrics = {K.STEP: step, K.STATUS: K.DIVERGED, K.REASON: reason, K.LAMBDA: opt.schedule.effective_lambda(step),
               K.TRAIN_SECONDS: seconds, K.PRECISION: p.precision, K.TEST_SCORED: False,
               **{key: math.nan for key in K.AVERAGE_KEYS}}
    report(metrics, None)
    return TrialOutcome(K.DIVERGED, reason, metrics)


def _evaluation(p: Prepared, opt: Optimisation, plan: Plan, progress: Progress, selection: Selection,
                losses: StepLosses, memory: PeakMemory, seconds: float, timings: Timings) -> tuple[dict, bool]:
    """(metrics, whether this step is a new best): dev scores; test too at a newly chosen step, at the last
    step, or always (``score_test: every``).

    Test is never scored to choose: the step is chosen on dev first, then its test score is recorded, so
    ``best_test_*`` in the tables (test at the chosen step) means what it did when every step had test.
    """
    config, step = p.config, progress.step
    started = time.perf_counter()
    metrics = evaluate(p, ("dev",))
    timings.dev += time.perf_counter() - started
    timings.dev_passes += 1
    new_best = _select(metrics, progress, selection)
    final = step == plan.total_steps
    with_test = new_best or final or config.score_test == "every"
    if with_test:
        started = time.perf_counter()
        test = evaluate(p, ("test",))
        timings.test += time.perf_counter() - started
        timings.test_passes += 1
        for lang, info in test.pop(K.LANGS).items():
            metrics[K.LANGS][lang].update({k: v for k, v in info.items() if k == "test"})
        if K.ITEMS in test:
            metrics[K.ITEMS] = test.pop(K.ITEMS)
        metrics.update({k: v for k, v in test.items() if k.startswith("test_")})
    train_loss, l_task, l_uriel = losses.means()
    metrics.update({
        K.STEP: step, K.EPOCH: step / plan.steps_per_epoch,
        K.EXAMPLES_SEEN: min(step * config.batch_size, int(config.epochs * len(p.train))),
        K.LAMBDA: opt.schedule.effective_lambda(step - 1),
        **dict(zip((K.TASK_WEIGHT, K.URIEL_WEIGHT), opt.schedule.weights(step - 1))),
        K.TRAIN_LOSS: train_loss, K.TASK_LOSS: l_task, K.URIEL_LOSS: l_uriel,
        K.STATUS: K.COMPLETED if final else K.RUNNING, K.REASON: "", K.TRAIN_SECONDS: seconds,
        K.TEST_SCORED: with_test, K.PRECISION: p.precision,
        K.PEAK_RSS_MB: memory.rss_mb(), K.PEAK_GPU_MB: memory.gpu_mb(),
    })
    return metrics, new_best


def _select(metrics: dict, progress: Progress, selection: Selection) -> bool:
    """Whether the dev scores in ``metrics`` are a new best on the selection metric (kept in ``progress``)."""
    key = K.report_key(selection.metric)  # oracle_dev_unseen reads dev_unseen
    value = metrics.get(key, math.nan)
    if progress.evaluations == 0 and key not in metrics:
        raise UsageError(f"selection metric {selection.metric!r} is not an evaluation average "
                         f"({', '.join(k for k in K.AVERAGE_KEYS if k.startswith('dev_'))})")
    if not selection.improves(value, progress.best):
        return False
    progress.best = value
    return True


def _report(p: Prepared, opt: Optimisation, progress: Progress, metrics: dict, new_best: bool, seconds: float,
            report: Report) -> None:
    """Hand the metrics over, with a checkpoint every ``checkpoint_every`` evaluations and at a new best."""
    config = p.config
    if progress.evaluations % config.checkpoint_every == 0 or (config.checkpoint_best and new_best):
        with tempfile.TemporaryDirectory(prefix="alchemy-ckpt-") as folder:
            checkpoint.save(folder, p.model, opt.stateful(), config, p.device, progress, seconds)
            report(metrics, folder)
    else:
        report(metrics, None)


def _train_step(p: Prepared, opt: Optimisation, batch: dict, step: int, losses: StepLosses) -> None:
    loss, l_task, l_uriel = compute_losses(p, _to(batch, p.device), opt.schedule, step)
    losses.add(step, loss, l_task, l_uriel)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(opt.params, p.config.grad_clip)
    opt.optimizer.step()
    opt.lr_schedule.step()
    opt.optimizer.zero_grad(set_to_none=True)


def run_trial(config: TrialConfig | Mapping, report: Report, *, resume_from: str | None = None,
              select: tuple[str, str] | None = None, heartbeat: Heartbeat | None = None) -> TrialOutcome:
    """Train and evaluate one configuration, calling ``report(metrics, checkpoint_dir)`` at every eval.

    ``select`` = (metric, mode) that chooses the best step (the search's metric); default dev_select, max.
    """
    if not isinstance(config, TrialConfig):
        config = TrialConfig.from_dict(config)
    memory = PeakMemory(pick_device(config.device))
    started = time.perf_counter()
    prepared = prepare(config)
    prepare_seconds = time.perf_counter() - started
    outcome = train_prepared(prepared, report, resume_from=resume_from, select=select, memory=memory,
                             started=started, heartbeat=heartbeat)
    outcome.timings.prepare = prepare_seconds
    return outcome


def train_prepared(p: Prepared, report: Report, *, resume_from: str | None = None,
                   select: tuple[str, str] | None = None, memory: PeakMemory | None = None,
                   started: float | None = None, heartbeat: Heartbeat | None = None) -> TrialOutcome:
    """The training loop of :func:`run_trial` on an already prepared trial (benchmarks build their own)."""
    selection = Selection(*select) if select else Selection()
    memory = memory or PeakMemory(p.device)
    started = time.perf_counter() if started is None else started
    plan = plan_steps(p.config, len(p.train))
    opt = build_optimisation(p, plan)
    progress = Progress()
    if resume_from:
        try:
            progress = checkpoint.restore(resume_from, p.model, opt.stateful(), p.config, p.device)
        except checkpoint.Unreadable as exc:
            # nothing was loaded (the file fails before any state is touched): start again from the first
            # step, which the results tables record as a new attempt, rather than fail on every retry
            print(f"warning: checkpoint unreadable ({exc}); the trial starts again from its beginning",
                  file=sys.stderr, flush=True)
    prior = progress.train_seconds

    def seconds() -> float:
        return prior + time.perf_counter() - started

    timings, loop_started = Timings(), time.perf_counter()
    losses, last = StepLosses(p.device), {}
    beat = {"at": _clock(), "step": progress.step}

    def sign_of_life(phase: str) -> None:
        now = _clock()
        if heartbeat is None or now - beat["at"] < HEARTBEAT_S:
            return
        rate = (progress.step - beat["step"]) * p.config.batch_size / max(now - beat["at"], 1e-9)
        heartbeat({"phase": phase, "step": progress.step, "total_steps": plan.total_steps,
                   "examples_per_second": rate, "seconds": seconds()})
        beat.update(at=now, step=progress.step)

    p.model.train()
    with contextlib.closing(_batches(p, plan, progress.step)) as batches:
        for batch in batches:
            _train_step(p, opt, batch, progress.step, losses)
            progress.step += 1
            sign_of_life("training")
            at_eval = progress.step % plan.eval_every == 0 or progress.step == plan.total_steps
            if at_eval or progress.step % DIVERGENCE_CHECK_EVERY == 0:
                diverged = _diverged(p, opt, losses, seconds(), report)
                if diverged:
                    return diverged
            if at_eval:
                now = seconds()
                last, new_best = _evaluation(p, opt, plan, progress, selection, losses, memory, now, timings)
                progress.evaluations += 1
                _report(p, opt, progress, last, new_best, now, report)
    timings.loop = time.perf_counter() - loop_started
    return TrialOutcome(K.COMPLETED, "", last, timings)
