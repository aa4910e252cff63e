"""One set of rules for the search settings: a space file's ``search:`` section, the command line's flags and
the sampler/pruner builders give the same message for the same rule, naming where the value came from."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from alchemy_tune.core.errors import UsageError
from alchemy_tune.tuning.samplers import build_sampler
from alchemy_tune.tuning.pruning import build_pruner
from alchemy_tune.core.settings import CMAES_ONE_OBJECTIVE, SearchSettings, check_settings
from alchemy_tune.tuning.space_file import load_space
from testing.cli import one_line_error, run_cli


def file_error(tmp_path, search: str) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(f"search: {search}\n")
    with pytest.raises(UsageError) as info:
        load_space(str(path))
    return str(info.value).removeprefix(f"{path}: ")


def cli_error(capsys, argv) -> str:
    return one_line_error(run_cli(*argv)).split("error: ", 1)[1]


@pytest.mark.parametrize("flag, value, setting, yaml_value", [
    ("--sampler", "tpee", "sampler", "tpee"),
    ("--pruner", "early", "pruner", "early"),
    ("--metric", "dev_unseen", "metric", "dev_unseen"),
    ("--seed", "-1", "seed", -1),
    ("--cpus-per-trial", "0", "cpus_per_trial", 0.0),
    ("--max-concurrent", "0", "max_concurrent", 0),
])
def test_a_flag_and_a_space_file_get_the_same_message(tmp_path, capsys, flag, value, setting, yaml_value):
    from_file = file_error(tmp_path, f"{{{setting}: {yaml_value}}}")
    from_cli = cli_error(capsys, ["--trials", "2", flag, value, "--dry-run"])
    assert from_file.startswith(f"search.{setting}: ") and from_cli.startswith(f"{flag}: ")
    # the same rule, the same words; only a file says how to leave an optional setting unset ("or null")
    assert from_cli.removeprefix(f"{flag}: ") == from_file.removeprefix(f"search.{setting}: ").replace(" or null", "")


def test_rules_between_settings_hold_in_a_file_that_names_them_and_on_the_command_line(tmp_path, capsys):
    asha = file_error(tmp_path, "{repeats: 2, pruner: asha}")
    assert asha.startswith("search.pruner: ASHA ranks single Ray trials")
    assert cli_error(capsys, ["--trials", "2", "--repeats", "2", "--pruner", "asha", "--dry-run"]) == \
        asha.replace("search.pruner", "--pruner")
    # a file with several objectives may leave the pruner to the command line
    ok = tmp_path / "ok.yaml"
    ok.write_text("search: {objectives: {dev_seen: max, dev_val: max}, sampler: nsga2}\n")
    assert load_space(str(ok)).settings.pruner == "median"
    with pytest.raises(UsageError, match="^--pruner: 'median': Optuna pruners need one objective, this search has 2"):
        check_settings(dataclasses.replace(load_space(str(ok)).settings, trials=2))
    assert file_error(tmp_path, "{objectives: {dev_seen: max, dev_val: max}, pruner: median}").startswith(
        "search.pruner: 'median': Optuna pruners need one objective")


def test_the_builders_use_the_same_rules(tmp_path):
    with pytest.raises(UsageError) as info:
        build_sampler("cmaes", seed=0, n_objectives=2)
    assert str(info.value) == f"sampler: {CMAES_ONE_OBJECTIVE}"
    assert file_error(tmp_path, "{objectives: {dev_seen: max, dev_val: max}, sampler: cmaes, pruner: none}") == \
        f"search.sampler: {CMAES_ONE_OBJECTIVE}"
    with pytest.raises(UsageError, match="^pruner: 'early' is not one of none, median"):
        build_pruner("early")


def test_replicate_data_is_a_switch_off_by_default_in_a_file_and_on_the_command_line(tmp_path):
    """Off unless asked (runs made before it existed keep their fixed data seed); the flag overrides the file
    both ways, and its data seeds are checked before anything starts, like the training seeds."""
    from alchemy_tune.tuning.checks import load

    assert SearchSettings().replicate_data is False
    space = tmp_path / "on.yaml"
    space.write_text("search: {repeats: 2, replicate_data: true, trials: 1}\ndata_seed: 4\n")
    assert load_space(str(space)).settings.replicate_data is True
    request = SimpleNamespace(space_path=str(space), settings={"replicate_data": False}, params={})
    assert load(request)[1].replicate_data is False
    big = tmp_path / "big.yaml"
    big.write_text(f"search: {{repeats: 3, replicate_data: true, trials: 1}}\ndata_seed: {2**32 - 2}\n")
    result = run_cli("--space", str(big), "--dry-run", "--storage", str(tmp_path / "runs"))
    one_line_error(result, "--repeats 3: replicate data seeds would reach 4294967296")
    # the flag's other way (a whole dry run, which reads the corpus): tests/test_cli.py


def test_a_search_needs_a_trial_count_and_defaults_pass():
    with pytest.raises(UsageError, match="^--trials: required"):
        check_settings(SearchSettings())
    check_settings(SearchSettings(trials=1))
