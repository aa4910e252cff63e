"""The run folder of one ``alchemy-tune train --out DIR`` trial: the same layout a search writes (alchemy_run.json,
the Parquet tables, TensorBoard events), so ``analyze`` and every reader treat it like a one-trial run."""

from __future__ import annotations

import time
from typing import Mapping

from alchemy_tune.core.settings import SearchSettings
from alchemy_tune.results.run_dir import join
from alchemy_tune.results.run_record import RunRecord
from alchemy_tune.core import constants as C
from alchemy_tune.results.tensorboard import TensorBoardLogger
from alchemy_tune.results.writer import ResultsWriter


class TrainRunSink:
    """Results and TensorBoard events of one ``alchemy-tune train --out DIR`` trial, in the run layout."""

    def __init__(self, run_dir: str, config):
        self.config = config.to_dict()
        # one trial, chosen by nothing: the selection metric of its best step is the default one
        record = RunRecord.new("train", task=config.task, settings=SearchSettings(sampler="none", pruner="none",
                                                                                  trials=1)).write(run_dir)
        self.trial_id = "train"
        self.started = time.time()
        self.writer = ResultsWriter(run_dir, record.run_id)
        self.tb = TensorBoardLogger(join(run_dir, "tensorboard", self.trial_id))
        self.tb.log_hparams(self.config, group=self.trial_id)

    def report(self, metrics: Mapping) -> None:
        self.writer.add_report(self.trial_id, self.config, metrics)
        self.tb.log(metrics)
        self.writer.flush()

    def close(self, outcome) -> None:
        self.writer.end_trial(self.trial_id, outcome.status, error=outcome.reason,
                              wall_seconds=time.time() - self.started)
        self.writer.close(compact_after=True)
        self.tb.close("success" if outcome.status == C.COMPLETED else "failure")
