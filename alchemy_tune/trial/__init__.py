"""One trial, no Ray and no Optuna: the typed ``TrialConfig`` (``config``), the encoder (``encoder``,
``e5format``), the model with its URIEL head (``model``), λ schedules (``lambdas``), batches, optimiser,
metrics, checkpoints, and the loop itself (``train.run_trial``, handed a ``report`` callable). Imports from
``tasks``, ``languages`` and ``core``."""
