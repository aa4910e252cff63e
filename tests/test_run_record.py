"""The run record (alchemy_run.json): written and read in one place, every search setting kept, so a resumed or
extended search opens its study with exactly the settings it began with; older flat records still read."""

from __future__ import annotations

import json

import pytest

from alchemy_tune.core.errors import UsageError
from alchemy_tune.core.settings import SearchSettings
from alchemy_tune.results.run_record import RUN_FILE, RunRecord
from alchemy_tune.tuning.resume import extended
from alchemy_tune.tuning.searcher import StudyHandle

# every setting away from its default: what a resume used to lose (pruner options, startup trials,
# concurrency) among them
SETTINGS = SearchSettings(metric="dev_seen", mode="max", objectives=None, sampler="tpe", pruner="percentile",
                          trials=5, cpus_per_trial=2.0, gpus_per_trial=0.5, max_concurrent=3, seed=7,
                          n_startup_trials=4, pruner_options={"percentile": 25.0, "n_warmup_steps": 2},
                          max_evals=6, repeats=2, replicate_data=True)


def _handle_settings(handle: StudyHandle) -> tuple:
    return (handle.objective_metrics, handle.directions, handle.sampler_name, handle.pruner_name, handle.seed,
            handle.concurrent, handle.pruner_options, handle.n_startup_trials, handle.repeats,
            handle.replicate_data)


def test_a_search_record_keeps_every_setting_and_budget(tmp_path):
    record = RunRecord.new("search", settings=SETTINGS, task="bible-genre", space="space.yaml",
                           params={"task": "bible-genre"}, trial_fn="scripted_trials:quality_trial",
                           max_failures=1, time_budget_s=60.0, gpu_hours=1.5, path=str(tmp_path))
    record.write(str(tmp_path))
    back = RunRecord.read(str(tmp_path))
    assert back == record
    assert back.settings == SETTINGS and back.settings.pruner_options == {"percentile": 25.0, "n_warmup_steps": 2}
    assert (back.time_budget_s, back.gpu_hours, back.max_failures) == (60.0, 1.5, 1)


def test_a_resumed_or_extended_search_opens_its_study_with_the_original_settings(tmp_path):
    run = tmp_path / "run"
    RunRecord.new("search", settings=SETTINGS, space="space.yaml", time_budget_s=60.0, path=str(run)).write(str(run))
    original = StudyHandle.for_settings(str(tmp_path / "a.journal"), SETTINGS)
    # resume reads the record and opens the study with the same function the search used
    record = RunRecord.read(str(run))
    resumed = StudyHandle.for_settings(str(tmp_path / "b.journal"), record.settings)
    assert _handle_settings(resumed) == _handle_settings(original)
    assert resumed.pruner_options == {"percentile": 25.0, "n_warmup_steps": 2} and resumed.n_startup_trials == 4
    assert resumed.concurrent == 3 and resumed.repeats == 2 and resumed.replicate_data is True
    # extending changes the trial count and nothing else, and the file says so
    extended(record, 9, str(run)).write(str(run))
    grown = RunRecord.read(str(run))
    assert grown.settings == SearchSettings(**{**SETTINGS.__dict__, "trials": 9})
    assert grown.time_budget_s == 60.0 and grown.run_id == record.run_id and grown.created == record.created


def test_the_file_keeps_the_flat_keys_tools_read(tmp_path):
    RunRecord.new("confirm", settings=SETTINGS, source_run={"run_id": "search-1"}).write(str(tmp_path))
    data = json.loads((tmp_path / RUN_FILE).read_text())
    assert data["kind"] == "confirm" and data["source_run"] == {"run_id": "search-1"}
    assert data["metric"] == "dev_seen" and data["sampler"] == "tpe" and data["pruner"] == "percentile"
    assert data["resources"] == {"cpu": 2.0, "gpu": 0.5} and data["max_concurrent"] == 3
    assert data["objectives"] == [["dev_seen", "max"]] and data["oracle"] is False
    assert data["search"]["pruner_options"] == {"percentile": 25.0, "n_warmup_steps": 2}


def test_a_record_without_the_settings_section_reads_from_its_flat_keys(tmp_path):
    (tmp_path / RUN_FILE).write_text(json.dumps({
        "schema": 1, "run_id": "search-old", "kind": "search", "created": "2026-11-01T00:00:00+00:00",
        "versions": {}, "metric": "dev_select", "mode": "max", "objectives": [["dev_select", "max"]],
        "sampler": "random", "pruner": "median", "repeats": 3, "trials": 12, "seed": 5, "max_concurrent": 2,
        "resources": {"cpu": 1, "gpu": 0.25}, "space": "s.yaml", "trial_fn": "alchemy_tune.train:run_trial"}))
    record = RunRecord.read(str(tmp_path))
    assert record.settings == SearchSettings(sampler="random", pruner="median", repeats=3, trials=12, seed=5,
                                             max_concurrent=2, cpus_per_trial=1, gpus_per_trial=0.25)
    assert record.space == "s.yaml" and record.metric == "dev_select"


@pytest.mark.parametrize("text, needle", [
    ('{"schema": 1, "run_id": ', "not valid JSON"),
    ('{"schema": "one"}', "missing integer 'schema'"),
    ('{"schema": 99}', "newer than this alchemy-tune supports"),
    ('{"schema": 1, "search": {"trials": 3, "colour": "red"}, "max_failures": 2}', None),
    ('{"schema": 1, "run_id": {"a": 1}}', "run_id: expected str, got dict"),
    ('{"schema": 1, "search": {"trials": "many"}}', "search.trials: expected int, got str"),
    ('{"schema": 1, "trials": "many"}', "search.trials: expected int, got str"),
    ('{"schema": 1, "params": [1]}', "params: expected dict"),
    ('{"schema": 1, "search": {"replicate_data": "yes"}}', "search.replicate_data: expected bool, got str"),
    ('{"schema": 1, "search": {"repeats": true}}', "search.repeats: expected int, got bool"),
    ('{"schema": 1, "extra": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
])
def test_bad_records_are_one_usage_error_naming_the_file(tmp_path, text, needle):
    (tmp_path / RUN_FILE).write_text(text)
    if needle is None:  # unknown settings keys (a newer version's) are ignored, not fatal
        assert RunRecord.read(str(tmp_path)).settings.trials == 3
        return
    with pytest.raises(UsageError, match=needle) as info:
        RunRecord.read(str(tmp_path))
    assert RUN_FILE in str(info.value)
