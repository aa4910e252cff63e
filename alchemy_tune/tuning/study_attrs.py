"""Names of the Optuna user attributes that several modules of the search read and write (the study in the
journal is the search's single source of truth: see :mod:`alchemy_tune.tuning.searcher`)."""

RAY_ID_ATTR = "ray_trial_id"
CONFIG_ATTR = "config"
ORPHAN_ATTR = "orphan"
RETRY_OF_ATTR = "retry_of"  # the FAIL trial (number) whose Ray trial this one runs again
REPLICATES_ATTR = "replicates"  # replicates per configuration (alchemy_tune.tuning.replicates)
STOPPED_ATTR = "stopped_asking"  # study attribute: why the search stopped asking for trials (a budget)
PRUNED_AT_ATTR = "pruned_at_step"  # the step a pruned trial stopped at
PRUNED_BY_ATTR = "pruned_by"  # what pruned it (the pruner's name, asha, unneeded)
