"""``alchemy-tune train``: one trial without Ray, a per-language table at the end.

Flags are generated from :class:`~alchemy_tune.trial.config.TrialConfig` (one per field, help from the field's
docstring), so the CLI, the YAML spaces and the trial cannot drift apart.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import math
import os
import sys
import time
from pathlib import Path

from alchemy_tune.core import constants as K
from alchemy_tune.core.aligned import aligned_lines
from alchemy_tune.trial.config import TrialConfig, config_fields


def _field_docs() -> dict[str, str]:
    """Attribute docstrings of TrialConfig (the string literal under each field)."""
    tree = ast.parse(inspect.getsource(TrialConfig))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def _optional(kind):
    def parse(text: str):
        return None if text.lower() in ("none", "null", "all") else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _language_list(text: str):
    return tuple(code.strip() for code in text.split(",") if code.strip())


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrialConfig field: ``--train-size``, ``--lambda``, ``--freeze-embeddings/--no-...``."""
    docs = _field_docs()
    group = parser.add_argument_group("trial configuration (defaults = the bundled CPU setting)")
    defaults = TrialConfig()
    for f in config_fields():
        flag = "--" + f.param.replace("_", "-")
        default = getattr(defaults, f.name)
        shown = f" (default: {default})" if default is not None else ""  # unset: the field's doc says what then
        kwargs = {"dest": f.name, "default": argparse.SUPPRESS, "help": f"{docs.get(f.name, '')}{shown}"}
        if f.kind == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if f.kind == "tuple":
            kwargs.update(type=_language_list, metavar="CODES")
        else:
            base = {"int": int, "float": float, "str": str}[f.kind]
            kwargs["type"] = _optional(base) if f.optional else base
            kwargs["metavar"] = base.__name__.upper()
        group.add_argument(flag, **kwargs)


def config_from_args(args: argparse.Namespace) -> TrialConfig:
    names = {f.name for f in config_fields()}
    return TrialConfig.from_dict({k: v for k, v in vars(args).items() if k in names}, source="train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="write a run folder (Parquet results, TensorBoard events) here")
    parser.add_argument("--quiet", action="store_true", help="print only the final table")
    add_config_arguments(parser)


def format_table(metrics: dict) -> str:
    """Per-language dev/test scores, seen then validation then test languages, with the group averages."""
    langs = metrics.get(K.LANGS, {})
    primary = metrics.get(K.PRIMARY_METRIC, "accuracy")
    names = sorted({m for v in langs.values() for split in K.SPLITS_EVALUATED for m in v.get(split, {})},
                   key=lambda m: (m != primary, m))
    header = ["language", "uriel", "group"] + [f"{s} {m}" for s in K.SPLITS_EVALUATED for m in names]
    rows = []
    label = {K.SEEN: "seen", K.VAL: "val", K.UNSEEN: "TEST"}
    for lang, info in sorted(langs.items(), key=lambda kv: (K.ROLES.index(K.lang_role(kv[1])), kv[0])):
        cells = [lang, info["uriel"], label[K.lang_role(info)]]
        cells += [_fmt(info.get(s, {}).get(m)) for s in K.SPLITS_EVALUATED for m in names]
        rows.append(cells)
    groups = [g for g in K.ROLES if any(K.lang_role(v) == g for v in langs.values())]
    for group in groups:
        cells = [f"{label[group].lower()} average", "", ""]
        cells += [_fmt(metrics.get(K.average_key(s, group))) if m == primary else "" for s in K.SPLITS_EVALUATED
                  for m in names]
        rows.append(cells)
    return "\n".join(aligned_lines(header, rows, rule_before=len(rows) - len(groups)))


def _fmt(value) -> str:
    if value is None:
        return "-"
    return "nan" if isinstance(value, float) and math.isnan(value) else f"{value:.3f}"


def run(args: argparse.Namespace) -> int:
    from alchemy_tune.trial.encoder import check_model
    from alchemy_tune.tasks import declared_roles

    config = config_from_args(args)
    # What the trial would refuse before reading data, answered before torch's ~2 s import: the model
    # folder, the task and its language lists.
    check_model(config.model)
    declared_roles(config.task, config.task_options())
    from alchemy_tune.results.train_run import TrainRunSink
    from alchemy_tune.trial.train import run_trial

    if args.quiet:  # the final table only: no weight-loading or download progress bars either
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    sink = TrainRunSink(args.out, config) if args.out else None  # the run folder's tables and events
    started = time.perf_counter()

    def report(metrics: dict, checkpoint_dir: str | None) -> None:
        if sink:
            sink.report(metrics)
        if not args.quiet:
            print(f"step {metrics[K.STEP]:>5}  λ={metrics.get(K.LAMBDA, math.nan):.3g}  "
                  f"loss={metrics.get(K.TRAIN_LOSS, math.nan):.4f}  dev seen={metrics.get('dev_seen', math.nan):.3f}  "
                  f"dev val={metrics.get('dev_val', math.nan):.3f}  dev test={metrics.get('dev_unseen', math.nan):.3f}"
                  f"  ({time.perf_counter() - started:.0f}s)",
                  flush=True)

    def heartbeat(beat: dict) -> None:  # between evaluations, at least every 30 s: a sign of life
        if args.quiet:
            return
        left = (beat["total_steps"] - beat["step"]) * config.batch_size / max(beat["examples_per_second"], 1e-9)
        print(f"  {beat['phase']}: step {beat['step']}/{beat['total_steps']}, "
              f"{beat['examples_per_second']:.1f} examples/s, about {left / 60:.1f} min of training left "
              f"({time.perf_counter() - started:.0f}s)", flush=True)

    if not args.quiet:
        print("preparing: the encoder, the task's data and the URIEL vectors (a first run builds caches, "
              "which can take minutes)", flush=True)
    outcome = run_trial(config, report, heartbeat=heartbeat)
    if sink:
        sink.close(outcome)
    if outcome.status == K.DIVERGED:
        print(f"trial diverged: {outcome.reason}", file=sys.stderr)
        return 1
    print()
    print(f"task {config.task}  model {config.model}  λ={config.lambda_} ({config.lambda_schedule})  "
          f"URIEL {config.uriel_features}  {time.perf_counter() - started:.0f}s")
    print(f"time: {outcome.timings.line()}")
    print(format_table(outcome.metrics))
    for note in outcome.metrics.get(K.NOTES, []):
        print(f"note: {note}")
    if args.out:
        print(f"\nresults: {Path(args.out).resolve()}")
    return 0
