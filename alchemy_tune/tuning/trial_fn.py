"""The trial function a search runs by default: a ``module:function`` name, resolved in each Ray worker (so
the search layer names the trial layer's entry point without importing it where the name is only shown)."""

TRIAL_FN = "alchemy_tune.trial.train:run_trial"
"""The trial function a search runs unless ``--trial-fn`` names another (``module:function``)."""
