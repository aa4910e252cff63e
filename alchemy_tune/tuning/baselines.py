"""Matched baselines on demand: every sampled LinguAlchemy configuration comes with its plain fine-tuning twin.

The paired analysis compares each configuration with the plain fine-tuning run (λ = 0, constant schedule)
that is identical in every setting that changes what the encoder learns from the task, on the same training
seeds (:mod:`alchemy_tune.analysis.paired`). A grid holds those runs when λ = 0 is among its values; a
sampled search over a continuous setting (``lr``) never samples one. With ``search.baselines: matched`` (the
default for ``tpe`` and ``random`` wherever a configuration can train with the URIEL loss) the search adds
them: when the sampler proposes a configuration that is not plain fine-tuning, its *twin* — the same config
with λ = 0 and a constant schedule — joins the search, once per distinct twin (configurations that differ
only in URIEL settings share one; a sampled plain configuration with the same settings serves as one), with
the same replicates and seeds.

How twins live in the study, and why:

- A twin is an Optuna trial added with ``Study.add_trial`` (never ``ask``), carrying no sampled
  parameters, so the sampler draws nothing from it; TPE's start-up count is of sampled trials only
  (:mod:`alchemy_tune.tuning.samplers`). TPE's split of finished trials into good and bad ones still ranks
  twins with the rest, where they add no parameter values. Samplers that model the parameters every
  finished trial shares (gp, cmaes, nsga2) would lose them all to a trial with none, so they refuse twins;
  grid and bruteforce enumerate λ = 0 themselves.
- ``trials`` counts sampled configurations; twins come on top, at most one per sampled configuration.
- A twin waits as an unclaimed trial until the next Ray trial takes it (with replicates: as a configuration
  with free replicate slots), the same way a killed driver's orphans are handed on, so a resumed search
  runs the twins its driver added but never started.
- A twin is never pruned by a pruner, so a completed configuration always has its baseline; pruners still
  compare other trials with it, as with any finished trial. Once every configuration it serves has ended
  without completing (pruned, diverged, failed), nothing needs it: it stops at its next evaluation, as
  pruned (``pruned_by: unneeded``), and a later configuration with the same settings gets a new twin.
- The tables mark twins (``matched_baseline`` in ``trials``); the analysis pairs them like any plain run.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from alchemy_tune.tuning.samplers import TWIN_SAMPLERS, sampler_kind
from alchemy_tune.tuning.study_attrs import CONFIG_ATTR, TWIN_KEY_ATTR, TWIN_OF_ATTR, is_twin
from alchemy_tune.core.errors import UsageError
from alchemy_tune.trial.config import is_plain, twin_of

MODES = ("matched", "none")


def twin_key(config: Mapping[str, Any]) -> str:
    """What a configuration and its twin share: every setting except those of the URIEL loss, as text."""
    from alchemy_tune.trial.config import URIEL, params_with_role

    uriel = params_with_role(URIEL)
    return json.dumps({k: v for k, v in config.items() if k not in uriel}, sort_keys=True, default=str)


def can_use_uriel(space) -> bool:
    """Whether some configuration of the space trains with the URIEL loss (λ > 0 or a dynamic schedule)."""
    from alchemy_tune.trial.config import TrialConfig

    def values(name: str, default):
        p = space.params.get(name)
        if p is None:
            return [default]
        options = p.values()
        return [p.high] if options is None else list(options)

    lams = values("lambda", TrialConfig.lambda_)
    schedules = values("lambda_schedule", TrialConfig.lambda_schedule)
    return any(float(v) > 0 for v in lams) or any(s != "constant" for s in schedules)


def resolve(space, settings):
    """The settings with ``baselines`` decided: ``matched`` by default where a sampler that can run twins
    searches a space with URIEL configurations, else ``none``; ``matched`` asked of another sampler fails."""
    import dataclasses

    asked = settings.baselines
    if asked is None:
        matched = settings.sampler in TWIN_SAMPLERS and can_use_uriel(space)
        return dataclasses.replace(settings, baselines="matched" if matched else "none")
    if asked == "matched" and settings.sampler not in TWIN_SAMPLERS:
        why = ("enumerates λ = 0 itself: give 0 among lambda's choices" if sampler_kind(settings.sampler).enumerates
               else "models the parameters every trial shares, and a twin has none")
        raise UsageError(f"--baselines matched: sampler {settings.sampler} {why}; use baselines none, or "
                         f"sampler {' or '.join(TWIN_SAMPLERS)}")
    return settings


def expected_twins(space, trials: int) -> tuple[int, str]:
    """(at most how many twins ``trials`` sampled configurations bring, how that bound comes about)."""
    from alchemy_tune.trial.config import URIEL, params_with_role

    uriel = params_with_role(URIEL)
    distinct = 1
    for p in space.params.values():
        if p.name in uriel or p.kind == "fixed":
            continue
        options = p.values()
        if options is None:
            return trials, "one per sampled configuration with the URIEL loss (a continuous setting never repeats)"
        distinct *= len(options)
    if distinct < trials:
        return distinct, f"one per distinct setting of the non-URIEL parameters ({distinct})"
    return trials, "one per sampled configuration with the URIEL loss, shared where settings repeat"


# ---------------------------------------------------------------------------------------- the study side
UNNEEDED = "unneeded"
"""``pruned_by`` of a twin stopped because every configuration it served ended without completing."""


def known(handle) -> tuple[dict[str, int], dict[int, set[int]]]:
    """({twin key: trial number} of every twin and sampled plain configuration of the study that is not
    failed or stopped, {twin number: the configurations it serves})."""
    from optuna.trial import TrialState


    twins: dict[str, int] = {}
    served: dict[int, set[int]] = {}
    for t in handle.study.get_trials(deepcopy=False):
        config = t.user_attrs.get(CONFIG_ATTR)
        if TWIN_OF_ATTR in t.user_attrs:
            served.setdefault(t.user_attrs[TWIN_OF_ATTR], set()).add(t.number)
        if t.state in (TrialState.FAIL, TrialState.PRUNED) or not config or not (is_twin(t) or is_plain(config)):
            continue
        twins.setdefault(t.user_attrs.get(TWIN_KEY_ATTR) or twin_key(config), t.number)
    return twins, served


def unneeded(handle, frozen) -> bool:
    """Whether the twin ``frozen`` serves no configuration that is running or completed any more."""
    from optuna.trial import TrialState

    from alchemy_tune.tuning.study_attrs import PRUNED_BY_ATTR

    configs = handle.served.get(frozen.number)
    if not configs:
        return False
    for number in configs:
        c = handle.get_trial(number)
        if c.state == TrialState.COMPLETE or (not c.state.is_finished() and c.user_attrs.get(PRUNED_BY_ATTR) is None):
            return False
    return True


def stop(handle, frozen) -> None:
    """Forget an unneeded twin: a later configuration with its settings gets a new one."""
    key = frozen.user_attrs.get(TWIN_KEY_ATTR)
    if key is not None and handle.twins.get(key) == frozen.number:
        del handle.twins[key]


def add_twin(handle, number: int, config: Mapping[str, Any]) -> int | None:
    """Give configuration ``number`` its twin (a new one, or the one it shares); the twin's number, None
    when the configuration is plain fine-tuning (then it is a baseline itself)."""
    key = twin_key(config)
    if is_plain(config):
        handle.twins.setdefault(key, number)
        return None
    if key not in handle.twins:
        handle.twins[key] = _add(handle, {TWIN_KEY_ATTR: key, CONFIG_ATTR: twin_of(config)})
    handle.set_user_attr(number, TWIN_OF_ATTR, handle.twins[key])
    handle.served.setdefault(handle.twins[key], set()).add(number)
    return handle.twins[key]


def retry_twin(handle, old, ray_id: str) -> int:
    """A failed twin run again: a fresh twin trial with the same config, taken by ``ray_id``."""
    from alchemy_tune.tuning.study_attrs import RAY_ID_ATTR, RETRY_OF_ATTR

    attrs = {k: v for k, v in old.user_attrs.items() if k in (TWIN_KEY_ATTR, CONFIG_ATTR)}
    number = _add(handle, {**attrs, RAY_ID_ATTR: ray_id, RETRY_OF_ATTR: old.number}, claimed=True)
    handle.twins[attrs[TWIN_KEY_ATTR]] = number
    return number


def _add(handle, attrs: dict, *, claimed: bool = False) -> int:
    """Add a running trial with these user attributes (no parameters, no sampler involved); its number."""
    from optuna.trial import TrialState, create_trial

    handle.replication.added(handle, attrs, claimed)
    study = handle.study
    study.add_trial(create_trial(state=TrialState.RUNNING, user_attrs=attrs))
    # one driver writes the study, so the trial just added is its last
    return study.get_trials(deepcopy=False)[-1].number
