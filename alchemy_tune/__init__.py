"""alchemy-tune: distributed hyperparameter search for LinguAlchemy.

Layers, each a subpackage, importing only downwards (``tests/test_imports.py`` checks it):
``cli`` → ``analysis`` → ``tuning`` (Ray Tune + Optuna) → ``results`` (run folder, Parquet tables) →
``trial`` (one trial, no Ray) → ``tasks`` (datasets) → ``languages`` (URIEL, URIEL+) → ``core``.
``alchemy_tune/search.py`` is the file ``ray submit`` runs; it only calls the CLI.
"""

__version__ = "0.1.0"
