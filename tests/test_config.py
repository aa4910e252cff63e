"""TrialConfig: eager validation however it is built, and the one description of its fields."""

import dataclasses
import math

import pytest

from alchemy_tune.trial import config as C
from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.core.errors import UsageError


@pytest.mark.parametrize("changes, needle", [
    ({"lambda_": -1.0}, "lambda: must be >= 0, got -1.0"),
    ({"lr": math.nan}, "lr: must be a finite number (in (0, 1)), got nan"),
    ({"batch_size": 0}, "batch_size: must be a positive integer, got 0"),
    ({"threads": True}, "threads: expected int or null, got True"),
    ({"pooling": "max"}, "pooling: 'max' is not one of cls, mean, pooler"),
    ({"seen": ("eng", 3)}, "seen: expected a list of language codes, got ('eng', 3)"),
    ({"pooling": "pooler"}, "has no pretrained pooler"),  # a rule between fields
    ({"lambda_": 0.0, "lambda_schedule": "alchemyscale"}, "lambda: 0 with lambda_schedule 'alchemyscale'"),
])
def test_constructing_validates_like_from_dict(changes, needle):
    with pytest.raises(UsageError) as built:
        TrialConfig(**changes)
    assert needle in str(built.value) and str(built.value).startswith("config: ")
    with pytest.raises(UsageError) as parsed:
        TrialConfig.from_dict({C.param_name(k): v for k, v in changes.items()})
    assert str(parsed.value) == str(built.value)


def test_replace_validates_too():
    with pytest.raises(UsageError, match="lr: must be in"):
        dataclasses.replace(TrialConfig(), lr=2.0)
    assert dataclasses.replace(TrialConfig(), lr=1e-3).lr == 1e-3


def test_every_problem_is_reported_at_once():
    with pytest.raises(UsageError) as exc:
        TrialConfig(lr=5.0, dropout=1.0, projection="conv")
    assert str(exc.value).count("config: ") == 3


def test_from_dict_without_combinations_keeps_a_partial_config():
    partial = TrialConfig.from_dict({"pooling": "pooler"}, combinations=False)
    assert partial.pooling == "pooler"
    with pytest.raises(UsageError, match="trial: pooling 'pooler'"):
        TrialConfig.from_dict({"pooling": "pooler"}, source="trial")
    with pytest.raises(UsageError, match="unknown parameter '_check'"):
        TrialConfig.from_dict({"_check": ("x", False)})


def test_lambda_is_the_parameter_of_field_lambda_():
    assert (C.param_name("lambda_"), C.field_name("lambda")) == ("lambda", "lambda_")
    assert (C.param_name("lambda"), C.field_name("lambda_"), C.param_name("lr")) == ("lambda", "lambda_", "lr")
    config = TrialConfig(lambda_=2.5)
    assert config.to_dict()["lambda"] == 2.5 and "lambda_" not in config.to_dict()
    assert TrialConfig.from_dict(config.to_dict()) == config
    assert TrialConfig.from_dict({"lambda_": 2.5}) == config


def test_config_fields_read_kinds_from_the_annotations():
    info = {f.param: f for f in C.config_fields()}
    assert [f.name for f in C.config_fields()] == [f.name for f in dataclasses.fields(TrialConfig)]
    assert (info["lambda"].name, info["lambda"].kind, info["lambda"].optional) == ("lambda_", "float", False)
    assert (info["threads"].kind, info["threads"].optional) == ("int", True)
    assert (info["seen"].kind, info["bf16"].kind, info["task"].kind) == ("tuple", "bool", "str")


def test_roles_are_disjoint_and_name_parameters():
    params = {f.param for f in C.config_fields()}
    roles = (C.EXECUTION, C.REPLICATE, C.LANGUAGES, C.URIEL)
    groups = [set(C.params_with_role(r)) for r in roles]
    assert all(g and g <= params for g in groups)
    assert sum(len(g) for g in groups) == len(set().union(*groups))
    # both seeds are replicates: trials that differ only in them are one configuration's draws
    assert set(C.params_with_role(C.REPLICATE)) == {"seed", "data_seed"}
    assert set(C.params_with_role(C.LANGUAGES)) == {"seen", "unseen", "val", "group_langs", "script_twins"}
    assert {"lambda", "lambda_schedule", "projection", "uriel_features"} <= set(C.params_with_role(C.URIEL))
    assert {"device", "threads", "checkpoint_every", "bf16"} <= set(C.params_with_role(C.EXECUTION))
    # what a trial learns is never execution: a checkpoint of another lr or seed must not resume
    assert not {"lr", "seed", "lambda", "model", "train_size"} & set(C.params_with_role(C.EXECUTION))


def test_the_data_seed_applies_only_where_it_draws_something():
    """It draws the training subsets and a control's derangement: with all the data and no control a fresh
    data seed would change nothing, so a confirmation does not pretend to redraw it."""
    assert C.applies("data_seed", {"train_size": 100})
    assert C.applies("data_seed", {})  # TrialConfig's default: a subset of 300
    assert not C.applies("data_seed", {"train_size": None})
    assert C.applies("data_seed", {"train_size": None, "uriel_control": "shuffled"})
    assert C.applies("data_seed", {"train_size": None, "group_langs": ["eng"], "group_train_size": 50})
    assert not C.applies("data_seed", {"train_size": None, "group_langs": None, "group_train_size": 50})
    assert C.applies("data_seed", {"task": "sib200"})  # the task's own default size: 200


def test_every_rule_names_real_fields():
    names = {f.name for f in dataclasses.fields(TrialConfig)}
    assert {n for n, _ in C.CHOICES} <= names
    assert {n for fields, _, _ in C.BOUNDS for n in fields} <= names
    assert {C.field_name(n) for n in C.COUPLED_FIELDS} <= names


def test_plain_fine_tuning_has_one_definition():
    """λ = 0 under any schedule that follows λ is plain; a dynamic schedule never is; the twin is λ = 0,
    constant, everything else kept."""
    assert C.is_plain({"lambda": 0}) and C.is_plain({"lambda": 0.0, "lambda_schedule": "warmup"})
    assert not C.is_plain({"lambda": 0.1}) and not C.is_plain({})  # default λ is 10
    assert not C.is_plain({"lambda": 0, "lambda_schedule": "alchemyscale"})
    assert C.uses_uriel({"lambda_": 1.0}) and not C.uses_uriel({"lambda_": 0.0})
    twin = C.twin_of({"lambda": 1.0, "lambda_schedule": "warmup", "lr": 3e-4, "uriel_features": "geo"})
    assert twin == {"lambda": 0.0, "lambda_schedule": "constant", "lr": 3e-4, "uriel_features": "geo"}
    assert C.is_plain(twin)
