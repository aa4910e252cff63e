"""TensorBoard event files: written per trial, read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import math

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from alchemy_tune.core import constants as C
from alchemy_tune.results.tensorboard import TensorBoardLogger, scalars_of
from testing.reports import make_report


def _scalars(log_dir):
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_losses_lambda_averages_and_languages_are_logged_at_their_steps(tmp_path):
    with TensorBoardLogger(tmp_path / "trial_0") as logger:
        for step in (1, 2):
            logger.log(make_report(step))
    scalars = _scalars(tmp_path / "trial_0")
    assert [s for s, _ in scalars["loss/train"]] == [1, 2]
    assert scalars["lambda"][0][1] == pytest.approx(10.0)
    assert scalars["dev/unseen"][1][1] == pytest.approx(make_report(2)["dev_unseen"], rel=1e-6)
    assert scalars["dev_accuracy/unseen/sw-KE"][1] == (2, pytest.approx(0.22, rel=1e-6))
    assert scalars["test_macro_f1/seen/eng"][0][1] == pytest.approx(0.1 / 3, rel=1e-6)
    assert len([t for t in scalars if t.startswith("dev_accuracy/")]) == 4


def test_each_trial_folder_is_a_separate_tensorboard_run(tmp_path):
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    for trial in ("trial_0", "trial_1"):
        logger = TensorBoardLogger(tmp_path / "search" / trial / "tensorboard")
        logger.log(make_report(1))
        logger.close()
    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(tmp_path))  # what `tensorboard --logdir RUN_DIR` does
    mux.Reload()
    assert sorted(mux.Runs()) == ["search/trial_0/tensorboard", "search/trial_1/tensorboard"]


def test_non_finite_and_missing_values_are_skipped():
    report = make_report(1)
    report["dev_unseen"] = math.nan
    del report["uriel_loss"]
    tags = scalars_of(report)
    assert "dev/unseen" not in tags and "loss/uriel" not in tags and "dev/seen" in tags


def test_step_must_be_an_int(tmp_path):
    logger = TensorBoardLogger(tmp_path)
    with pytest.raises(ValueError, match="'step' must be an int"):
        logger.log({"step": None})
    logger.close()


def test_logging_does_not_import_torch(tmp_path):
    """Scripted and simulated trials log to TensorBoard without paying torch's import in every worker."""
    import subprocess
    import sys

    code = ("import sys; from alchemy_tune.results.tensorboard import TensorBoardLogger; "
            f"logger = TensorBoardLogger({str(tmp_path)!r}); logger.log({{'step': 1, 'train_loss': 0.5}}); "
            "logger.close(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert _scalars(tmp_path)["loss/train"] == [(1, 0.5)]


def test_each_trials_settings_reach_the_hparams_dashboard(tmp_path):
    """TensorBoard's HParams dashboard: every trial folder holds its settings as a session (lists joined,
    flags kept as flags), how it ended, and the experiment's metrics (the averages), read back with
    TensorBoard's own multiplexer and the plugin's own parsers."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import api_pb2, metadata

    from alchemy_tune.results.tensorboard import HPARAM_METRICS

    configs = {"a": {"lambda": 0.1, "uriel_features": "geo", "bf16": False, "seen": ["eng", "fra"], "lr": 1e-4},
               "b": {"lambda": 1.0, "uriel_features": "syntax_knn", "bf16": False, "seen": ["eng"], "lr": 3e-4}}
    for trial, config in configs.items():
        logger = TensorBoardLogger(tmp_path / "search" / trial / "tensorboard")
        logger.log_hparams(config, group=trial)
        for step, offset in ((1, 0.0), (2, 0.2), (3, -0.1)):  # the best step is 2
            logger.log({**make_report(step, offset=offset), C.SELECT: 0.5 + offset})
        logger.close("success" if trial == "a" else "failure")
    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(tmp_path / "search"))
    mux.Reload()
    content = mux.PluginRunToTagToContent(metadata.PLUGIN_NAME)
    assert len(content) == 2
    for run, tags in content.items():
        trial = run.split("/")[0]
        start = metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
        hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
        expected = {**configs[trial], "seen": ",".join(configs[trial]["seen"])}
        assert hparams == pytest.approx(expected) and start.group_name == trial
        end = metadata.parse_session_end_info_plugin_data(tags[metadata.SESSION_END_INFO_TAG])
        assert end.status == (api_pb2.STATUS_SUCCESS if trial == "a" else api_pb2.STATUS_FAILURE)
        experiment = metadata.parse_experiment_plugin_data(tags[metadata.EXPERIMENT_TAG])
        assert [m.name.tag for m in experiment.metric_infos] == list(HPARAM_METRICS)
        assert {h.name for h in experiment.hparam_infos} == set(configs[trial])
        # the metrics beside the settings: each average at the best step, the latest value of its tag
        best = {tag: mux.Tensors(run, tag)[-1] for tag in HPARAM_METRICS if tag in mux.GetAccumulator(run).Tags()["tensors"]}
        assert set(best) >= {"best/dev/select", "best/dev/unseen", "best/test/unseen"}
        assert best["best/dev/select"].tensor_proto.float_val[0] == pytest.approx(0.7)
        want = make_report(2, offset=0.2)[C.average_key("test", "unseen")]
        assert best["best/test/unseen"].tensor_proto.float_val[0] == pytest.approx(want)
