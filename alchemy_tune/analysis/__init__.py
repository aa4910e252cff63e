"""From tables to answers: leaderboards and ablations (``analyze``), paired comparisons against matched
baselines (``paired``, ``stats``), parameter importance, plots, and confirmation runs (``confirm``, which
starts a search). Imports from ``tuning``, ``results`` and below."""
