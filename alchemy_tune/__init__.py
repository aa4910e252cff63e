"""alchemy-tune: distributed hyperparameter search for LinguAlchemy.

Modules, in the order a trial uses them:
``codes`` (dataset language codes -> lang2vec codes), ``uriel`` (URIEL vectors),
``tasks`` (datasets -> examples per language and split), ``encoder`` (the bundled encoder),
``batching``, ``model`` (encoder + heads + URIEL projection), ``lambdas`` (λ schedules),
``train`` (one trial, handed a ``report`` callable), ``space`` / ``search`` (Ray Tune + Optuna),
``results`` (Parquet tables), ``analyze`` (reports) and ``cli``.
"""

__version__ = "0.1.0"
