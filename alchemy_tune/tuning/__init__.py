"""The search layer: Ray Tune and Optuna. Spaces and their YAML files (``space``, ``space_file``), the study and its searcher (``searcher``, ``samplers``, ``pruning``,
``replicates``), the trial end and progress callbacks (``progress``), budgets, resume and warm starts,
the Ray side of a trial (``trainable``, ``cluster``, ``journal``, ``retention``), and ``search.run_search``
which assembles them. Imports from ``results`` and below."""
