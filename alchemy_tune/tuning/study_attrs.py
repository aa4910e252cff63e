"""Names of every Optuna user attribute and study attribute the search reads and writes, in one place (the
study in the journal is the search's single source of truth: see :mod:`alchemy_tune.tuning.searcher`)."""

RAY_ID_ATTR = "ray_trial_id"
CONFIG_ATTR = "config"
ORPHAN_ATTR = "orphan"
RETRY_OF_ATTR = "retry_of"  # the FAIL trial (number) whose Ray trial this one runs again
REPLICATES_ATTR = "replicates"  # replicates per configuration (alchemy_tune.tuning.replicates)
STOPPED_ATTR = "stopped_asking"  # study attribute: why the search stopped asking for trials (a budget)
PRUNED_AT_ATTR = "pruned_at_step"  # the step a pruned trial stopped at
PRUNED_BY_ATTR = "pruned_by"  # what pruned it (the pruner's name, asha, unneeded)
REASON_ATTR = "reason"
STATUS_ATTR = "alchemy_status"
PREVIOUS_IDS_ATTR = "previous_ray_trial_ids"  # an adopted orphan's earlier Ray ids (their rows are dropped)
WARM_ATTR = "warm_start_from"  # a finished trial of an earlier run, told to this study
TWIN_KEY_ATTR = "matched_baseline_key"
"""User attribute of a twin: the settings it shares with the configurations it serves (its key)."""
TWIN_OF_ATTR = "matched_baseline"
"""User attribute of a configuration: the trial number of its twin."""
LANG_SCORES_ATTR = "lang_scores:"  # + evaluation index -> the objective group's per-language dev scores
DROPPED_ATTR = "not_started"
"""Study attribute: how many queued trials a spent budget kept from starting."""

# per replicate r of a configuration (alchemy_tune.tuning.replicates): its Ray trial, its reports, its end
RAY_ID_PREFIX = "ray_trial_id:"
REPORTS_PREFIX = "replicate_reports:"
END_PREFIX = "replicate_end:"

def is_twin(frozen) -> bool:
    """Whether an Optuna trial is a matched plain fine-tuning twin (:mod:`alchemy_tune.tuning.baselines`)."""
    return frozen is not None and TWIN_KEY_ATTR in frozen.user_attrs
