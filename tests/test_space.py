"""Search spaces: YAML -> validated SearchSpace -> Optuna suggestions and grids."""

from __future__ import annotations

import itertools
import json
import re
import textwrap
from pathlib import Path

import optuna
import pytest

from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.core.errors import UsageError
from alchemy_tune.core.settings import SAMPLERS, SearchSettings
from alchemy_tune.tuning.space import check_trial_config
from alchemy_tune.tuning.space_file import load_space
from alchemy_tune.languages.uriel import parse_feature_spec

SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
SHIPPED = sorted(SPACES.glob("*.yaml"))
PAPER_SETS = ("syntax_knn", "syntax_average", "geo")
PAPER_SUBSETS = ["+".join(c) for n in (1, 2, 3) for c in itertools.combinations(PAPER_SETS, n)]

optuna.logging.set_verbosity(optuna.logging.WARNING)
# BruteForceSampler and TPE's `group` are marked experimental; they are what the search uses.
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def problems_of(path: str, overrides=None) -> list[str]:
    with pytest.raises(UsageError) as info:
        load_space(path, overrides)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    # split only where the next problem starts: a message may itself contain "; "
    return re.split(f"; (?={re.escape(str(path))}: )", message)


def sample(space, n: int, sampler=None) -> list[dict]:
    study = optuna.create_study(sampler=sampler or optuna.samplers.RandomSampler(seed=0))
    configs = []
    for _ in range(n):
        trial = study.ask()
        configs.append(space.suggest(trial))
        study.tell(trial, 0.0)
    return configs


# ------------------------------------------------------------------------------------------- shipped files


def test_the_required_spaces_are_shipped():
    names = {p.name for p in SHIPPED}
    assert {"default.yaml", "ablation.yaml", "scaling.yaml", "lambda.yaml", "paper-grid.yaml",
            "paper-massive.yaml", "paper-masakhanews.yaml", "paper-semrel.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_space_loads_and_yields_valid_trial_configs(path):
    space = load_space(path)
    assert space.settings.sampler in SAMPLERS
    grid = space.grid()
    if space.settings.sampler == "grid":  # a grid file runs its whole grid without --trials
        assert space.settings.trials == len(grid)
    configs = grid or sample(space, 30)
    for config in configs:
        check_trial_config(config)  # raises on anything TrialConfig rejects
        if "uriel_features" in config:
            parse_feature_spec(config["uriel_features"])


def test_default_space_is_a_short_prunable_cpu_search():
    space = load_space(SPACES / "default.yaml")
    s = space.settings
    assert (s.trials, s.max_concurrent, s.gpus_per_trial, s.pruner) == (8, None, 0, "median")  # no cap: resources decide
    assert space.grid() is None  # lr is a log range: a real search, not a grid
    config = check_trial_config(space.fixed())
    assert config.task == "bible-genre" and config.model == "e5-small"
    assert config.epochs * config.evals_per_epoch >= 2  # the pruner needs intermediate reports
    lambdas = {c["lambda"] for c in sample(space, 60)}
    assert 0 in lambdas and len(lambdas) > 1


def test_paper_grid_is_7_subsets_by_5_scales_plus_2_dynamic_schedules():
    grid = load_space(SPACES / "paper-grid.yaml").grid()
    cells = {(c["uriel_features"], c["lambda_schedule"], c.get("lambda")) for c in grid}
    expected = {(f, "constant", lam) for f in PAPER_SUBSETS for lam in (1, 10, 25, 50, 100)}
    expected |= {(f, schedule, None) for f in PAPER_SUBSETS for schedule in ("alchemyscale", "alchemytune")}
    assert len(grid) == len(cells) == 49
    assert cells == expected


@pytest.mark.parametrize("name", ["paper-massive.yaml", "paper-masakhanews.yaml", "paper-semrel.yaml"])
def test_paper_task_grids_add_one_baseline_per_model(name):
    space = load_space(SPACES / name)
    grid = space.grid()
    models = ("bert-base-multilingual-cased", "xlm-roberta-base")
    expected = set()
    for model in models:
        expected.add((model, "constant", 0, None))
        expected |= {(model, "constant", lam, f) for f in PAPER_SUBSETS for lam in (1, 10, 25, 50, 100)}
        expected |= {(model, s, None, f) for f in PAPER_SUBSETS for s in ("alchemyscale", "alchemytune")}
    cells = {(c["model"], c["lambda_schedule"], c.get("lambda"), c.get("uriel_features")) for c in grid}
    assert len(grid) == 100 and cells == expected
    assert (space.settings.gpus_per_trial, space.settings.cpus_per_trial) == (1, 4)
    # the shared values alone (the model is sampled: rules between fields wait for a whole trial config)
    fixed = TrialConfig.from_dict(space.fixed(), combinations=False)
    assert fixed.pooling == "pooler" and all(check_trial_config(c).pooling == "pooler" for c in grid)
    assert fixed.lr == 5e-5 and fixed.train_size is None
    assert fixed.batch_size == (32 if name == "paper-semrel.yaml" else 128)
    # the models need the hub or a local copy: pinning model to a folder must work
    pinned = load_space(SPACES / name, {"model": "/models/xlm-roberta-base", "data_dir": "/data/x"})
    assert len(pinned.grid()) == 50
    assert {c["model"] for c in pinned.grid()} == {"/models/xlm-roberta-base"}


def test_ablation_scaling_and_lambda_grids():
    ablation = load_space(SPACES / "ablation.yaml").grid()
    baseline = [c for c in ablation if c["lambda"] == 0]
    assert len(baseline) == 1 and "uriel_features" not in baseline[0] and "projection" not in baseline[0]
    assert len(ablation) == 1 + 7 * 3 * 2
    scaling = load_space(SPACES / "scaling.yaml").grid()
    assert len(scaling) == 5 * 3 and {c["lambda"] for c in scaling} == {0, 0.1, 1}
    assert max(c["train_size"] for c in scaling) >= 16 * min(c["train_size"] for c in scaling)
    lam = load_space(SPACES / "lambda.yaml").grid()
    per_schedule = {}
    for c in lam:
        per_schedule[c["lambda_schedule"]] = per_schedule.get(c["lambda_schedule"], 0) + 1
    assert per_schedule == {"constant": 3, "warmup": 6, "linear_decay": 3, "cosine_decay": 3,
                            "alchemyscale": 3, "alchemytune": 1}
    assert all(("scale_interval" in c) == (c["lambda_schedule"] == "alchemyscale") for c in lam)
    assert all("lambda" not in c for c in lam if c["lambda_schedule"].startswith("alchemy"))


def test_scaling_space_holds_the_step_budget_fixed_across_train_sizes():
    from alchemy_tune.trial.optim import eval_interval, total_steps
    from alchemy_tune.tasks import TASKS

    header = (SPACES / "scaling.yaml").read_text().split("\ndescription:")[0]
    assert "FIXED STEP BUDGET" in header and "max_steps" in header
    budgets = set()
    for values in load_space(SPACES / "scaling.yaml").grid():
        config = check_trial_config(values)
        steps, per_epoch = total_steps(config, config.train_size * len(TASKS["bible-genre"].seen))
        every = eval_interval(config, per_epoch)
        budgets.add((steps, tuple(range(every, steps + 1, every))))
    assert budgets == {(200, (50, 100, 150, 200))}  # same updates and evaluations for 25 ... 400 per language


# --------------------------------------------------------------------------------------------- errors


def test_all_problems_are_reported_at_once_with_file_and_key_path(tmp_path):
    path = write(tmp_path, """
        lr: {type: float, low: 0.001, high: 1.0e-5}
        epochs: {type: float, low: 0, high: 3, log: true}
        batch_size: {type: int, low: 8, high: 64, step: 8, log: true}
        dropout: {type: float, low: 0.0, high: 0.3, stepp: 0.1}
        lambda: {type: categorical, choices: []}
        pooling: {type: categorical, choices: [mean, 1]}
        projection: {type: categorical, choices: [linear, conv]}
        num_layers: {type: float, low: 2, high: 4}
        proj_width: {type: categorical, choices: [128, 256], when: {projection: mlp, pooling: max}}
        proj_depth: {type: int, low: 2, high: 3, when: {nonsense: 1}}
        seed: {type: uniform, low: 1, high: 3}
        max_length: {type: int, low: 16.5, high: 64}
        grad_clip: {type: float, high: 2}
        warmup_ratio: 2
        lrr: 0.1
        search: {sampler: tpee, pruner: asha, trials: 0, colour: blue}
    """)
    assert problems_of(path) == [
        f"{path}: lr.low: low <= high must hold, got low=0.001, high=1e-05",
        f"{path}: epochs.log: log requires low > 0, got low=0.0",
        f"{path}: epochs.low: must be > 0, got 0.0",
        f"{path}: batch_size.step: step cannot be combined with log: true",
        f"{path}: dropout.stepp: unknown key for type float (valid: type, low, high, log, step, when)",
        f"{path}: lambda.choices: expected a non-empty list, got []",
        f"{path}: pooling.choices: choices mix types (number, str): give one type",
        f"{path}: projection.choices[1]: 'conv' is not one of linear, mlp",
        f"{path}: num_layers.type: num_layers takes int values, so a float range does not apply: "
        "use type: int",
        f"{path}: seed.type: 'uniform' is not a type: give one of fixed, float, int, categorical, subset",
        f"{path}: max_length.low: expected an integer, got 16.5",
        f"{path}: grad_clip.low: missing (type float needs low, high)",
        f"{path}: warmup_ratio: must be in [0, 1], got 2",
        f"{path}: lrr: unknown parameter (did you mean 'lr'?): parameters are the fields of TrialConfig "
        "(alchemy_tune/trial/config.py), search, description",
        f"{path}: search.sampler: 'tpee' is not one of {', '.join(SAMPLERS)}",
        f"{path}: search.trials: expected an integer >= 1 or null, got 0",
        f"{path}: search.colour: unknown setting (valid: metric, mode, objectives, sampler, pruner, trials, "
        "cpus_per_trial, gpus_per_trial, max_concurrent, seed, n_startup_trials, pruner_options, max_evals, "
        "repeats, replicate_data, keep_checkpoints, baselines, primary, margin)",
        # proj_width names projection and pooling, both invalid above: not reported a second time
        f"{path}: proj_depth.when.nonsense: 'nonsense' is not a parameter of this space",
    ]


def test_condition_values_must_be_reachable(tmp_path):
    path = write(tmp_path, """
        projection: {type: categorical, choices: [linear, mlp]}
        proj_width: {type: categorical, choices: [128, 256], when: {projection: mlpp}}
        proj_depth: {type: int, low: 2, high: 3, when: {proj_width: 512}}
        lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true, when: {proj_depth: 4}}
        proj_layernorm: {type: categorical, choices: [false, true]}
        proj_dropout: {type: float, low: 0.0, high: 0.5, when: {proj_layernorm: 1}}
    """)
    assert problems_of(path) == [
        f"{path}: proj_width.when.projection: 'mlpp' is not a value projection can take ('linear', 'mlp')",
        # proj_width is conditional, so its default (256) would count; 512 is neither a choice nor that
        f"{path}: proj_depth.when.proj_width: 512 is not a value proj_width can take (128, 256)",
        f"{path}: lr.when.proj_depth: 4 is not a value proj_depth can take (2, 3)",
        # 1 == True in Python, but a condition on a boolean wants true or false
        f"{path}: proj_dropout.when.proj_layernorm: 1 is not a value proj_layernorm can take (False, True)",
    ]


DYNAMIC_LAMBDA_0 = "lambda: 0 with lambda_schedule '{}' would still train with the URIEL loss"


@pytest.mark.parametrize("text, schedule", [
    # λ sampled, schedule categorical: λ = 0 with a dynamic schedule can be drawn
    ("""
     lambda_schedule: {type: categorical, choices: [constant, alchemytune]}
     lambda: {type: categorical, choices: [0, 10]}
     """, "alchemytune"),
    # a continuous λ whose range starts at 0, with a fixed dynamic schedule
    ("""
     lambda_schedule: alchemyscale
     lambda: {type: float, low: 0.0, high: 25.0}
     """, "alchemyscale"),
    # a condition that admits the dynamic schedules too
    ("""
     lambda_schedule: {type: categorical, choices: [constant, alchemyscale, alchemytune]}
     lambda: {type: categorical, choices: [0, 10], when: {lambda_schedule: [constant, alchemyscale]}}
     """, "alchemyscale"),
])
def test_lambda_zero_with_a_dynamic_schedule_is_refused_where_it_can_occur(tmp_path, text, schedule):
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert len(problems) == 1 and DYNAMIC_LAMBDA_0.format(schedule) in problems[0], problems
    assert f"lambda_schedule={schedule!r}" in problems[0]  # names the combination


def test_lambda_zero_with_a_dynamic_schedule_that_cannot_occur_is_fine(tmp_path):
    # the paper spaces' shape: λ (0 included) only for the constant schedule; the dynamic ones read λ's
    # default (10). Also: λ = 0 with a static schedule, and a dynamic schedule pinned by an override.
    path = write(tmp_path, """
        lambda_schedule: {type: categorical, choices: [constant, warmup, alchemyscale, alchemytune]}
        lambda: {type: categorical, choices: [0, 1, 10], when: {lambda_schedule: [constant, warmup]}}
    """)
    grid = load_space(path).grid()
    assert {(c["lambda_schedule"], c.get("lambda")) for c in grid} >= {("constant", 0), ("alchemytune", None)}
    fixed = write(tmp_path, "lambda: {type: categorical, choices: [0, 10]}\n", name="y.yaml")
    assert load_space(fixed).grid()
    assert DYNAMIC_LAMBDA_0.format("alchemytune") in problems_of(fixed, {"lambda_schedule": "alchemytune"})[0]


def test_condition_cycles_are_errors(tmp_path):
    path = write(tmp_path, """
        projection: {type: categorical, choices: [linear, mlp], when: {pooling: mean}}
        pooling: {type: categorical, choices: [mean, cls], when: {projection: mlp}}
    """)
    assert problems_of(path) == [
        f"{path}: projection.when: conditions form a cycle (projection -> pooling -> projection)"]


def test_subset_and_uriel_values_are_checked_with_the_uriel_parser(tmp_path):
    path = write(tmp_path, """
        uriel_features: {type: subset, of: [syntax_knn, geoo, syntax_knn], min_size: 4}
        missing: {type: categorical, choices: [zero, median]}
    """)
    found = problems_of(path)
    assert found[0].startswith(f"{path}: uriel_features.of[1]: uriel feature set 'geoo' in 'geoo' is "
                               "unknown;")
    assert found[1:] == [
        f"{path}: uriel_features.of[2]: duplicate of of[0] ('syntax_knn')",
        f"{path}: uriel_features.min_size: expected an integer from 1 to 3 (the size of of), got 4",
        f"{path}: missing.choices[1]: 'median' is not one of zero, mean, knn",
    ]
    path = write(tmp_path, "uriel_features: {type: categorical, choices: [geo, syntax_knn+learned]}\n",
                 "y.yaml")
    (message,) = problems_of(path)
    assert message.startswith(f"{path}: uriel_features.choices[1]: uriel feature set 'learned' is not "
                              "supported")


def test_file_level_errors(tmp_path):
    empty = write(tmp_path, "# nothing here\n", "empty.yaml")
    assert problems_of(empty)[0].startswith(f"{empty}: empty file: expected a mapping")
    broken = write(tmp_path, "lr: 0.1\nlambda: [1, 2\nseed: 3\n", "broken.yaml")
    (message,) = problems_of(broken)
    assert message.startswith(f"{broken}: line 3, column 5: invalid YAML:")
    listed = write(tmp_path, "- lr\n- seed\n", "list.yaml")
    assert problems_of(listed) == [
        f"{listed}: expected a mapping of parameter names at the top level, got list"]
    twice = write(tmp_path, "lr: 0.1\nseed: 1\nlr: 0.2\n", "twice.yaml")
    assert problems_of(twice) == [
        f"{twice}: lr: duplicate key (lines 1 and 3): YAML would silently keep only the last"]
    missing = str(tmp_path / "nope.yaml")
    assert problems_of(missing)[0].startswith(f"{missing}: no such search-space file")


def test_fixed_values_lists_and_grid_sampler_need(tmp_path):
    path = write(tmp_path, """
        lambda: [0, 10]
        projection: {type: fixed, value: conv}
        lr: {type: float, low: 1.0e-5, high: 1.0e-3}
        search: {sampler: grid, mode: best}
    """)
    assert problems_of(path) == [
        f"{path}: lambda: a list is not a value of lambda: to search over values write "
        "{type: categorical, choices: [...]}",
        f"{path}: projection.value: 'conv' is not one of linear, mlp",
        f"{path}: search.mode: 'best' is not one of max, min",
        f"{path}: search.sampler: grid needs every parameter discrete, but lr is a float range without step: "
        "give choices or a step",
    ]


# ------------------------------------------------------------------------------------- suggest and grid


CONDITIONAL = """
    lr: {type: float, low: 1e-5, high: 1e-3, log: true}
    lambda: {type: float, low: 5, high: 50, step: 5}
    projection: {type: categorical, choices: [linear, mlp]}
    proj_width: {type: int, low: 64, high: 512, log: true, when: {projection: mlp}}
    proj_activation: {type: categorical, choices: [gelu, relu], when: {proj_width: [64, 65, 66]}}
    lambda_schedule: {type: categorical, choices: [constant, warmup, alchemyscale]}
    scale_interval: {type: int, low: 50, high: 200, step: 50, when: {lambda_schedule: alchemyscale}}
    lambda_warmup: {type: fixed, value: 0.3, when: {lambda_schedule: warmup}}
    seen: {type: categorical, choices: [[eng, fra], [eng]]}
    epochs: 1
"""


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_suggest_honours_conditions_over_many_trials(tmp_path, sampler):
    space = load_space(write(tmp_path, CONDITIONAL))
    # TPE as the search builds it: multivariate with groups, which is how it handles conditional spaces
    chosen = {"random": optuna.samplers.RandomSampler(seed=1),
              "tpe": optuna.samplers.TPESampler(seed=1, n_startup_trials=10, multivariate=True, group=True,
                                                constant_liar=True)}[sampler]
    configs = sample(space, 150, chosen)
    for c in configs:
        assert ("proj_width" in c) == (c["projection"] == "mlp")
        assert ("proj_activation" in c) == (c.get("proj_width") in (64, 65, 66))
        assert ("scale_interval" in c) == (c["lambda_schedule"] == "alchemyscale")
        assert ("lambda_warmup" in c) == (c["lambda_schedule"] == "warmup")
        assert 1e-5 <= c["lr"] <= 1e-3 and c["lambda"] % 5 == 0 and c["epochs"] == 1
        assert check_trial_config(c).seen in (("eng", "fra"), ("eng",))
    # both branches of every condition were reached
    assert {c["projection"] for c in configs} == {"linear", "mlp"}
    assert {c["lambda_schedule"] for c in configs} == {"constant", "warmup", "alchemyscale"}


def test_suggest_records_only_active_parameters_in_optuna(tmp_path):
    space = load_space(write(tmp_path, CONDITIONAL))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(40):
        trial = study.ask()
        config = space.suggest(trial)
        # fixed values are in the config but never suggested; inactive ones are neither
        assert set(trial.params) == set(config) - {"epochs", "lambda_warmup"}
        study.tell(trial, float(config["lr"]))


def test_subset_parameter_yields_every_valid_spec_in_member_order(tmp_path):
    space = load_space(write(tmp_path, """
        uriel_features: {type: subset, of: [syntax_knn, syntax_average, geo], min_size: 2}
    """))
    seen = {c["uriel_features"] for c in sample(space, 120)}
    assert seen == {s for s in PAPER_SUBSETS if s.count("+") >= 1}
    for spec in seen:
        parts = parse_feature_spec(spec)
        assert list(parts) == sorted(parts, key=PAPER_SETS.index)
    assert sorted(c["uriel_features"] for c in space.grid()) == sorted(seen)


@pytest.mark.parametrize("name", ["ablation.yaml", "lambda.yaml", "paper-grid.yaml", "paper-semrel.yaml"])
def test_grid_equals_what_optunas_brute_force_sampler_enumerates(name):
    """An independent enumeration: BruteForceSampler walks the define-by-run tree of suggest()."""
    space = load_space(SPACES / name)
    study = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))
    walked = []
    for _ in range(500):
        trial = study.ask()
        walked.append(json.dumps(space.suggest(trial), sort_keys=True))
        try:
            study.tell(trial, 0.0)
        except RuntimeError:  # the sampler stops the study once the tree is exhausted
            break
    grid = [json.dumps(c, sort_keys=True) for c in space.grid()]
    assert len(walked) == len(set(walked)) == len(grid)
    assert set(walked) == set(grid)


def test_huge_int_ranges_are_refused_by_grid_but_fine_for_sampling(tmp_path):
    space = load_space(write(tmp_path, "seed: {type: int, low: 0, high: 1000000000}\n"))
    with pytest.raises(UsageError, match="the grid has more than 100,000 configurations"):
        space.grid()
    assert 0 <= sample(space, 1)[0]["seed"] <= 10**9
    assert space.params["seed"].can_take(123456789) and not space.params["seed"].can_take(1.5)


def test_grid_is_none_with_a_continuous_parameter_and_counts_conditions(tmp_path):
    assert load_space(write(tmp_path, CONDITIONAL)).grid() is None
    space = load_space(write(tmp_path, """
        projection: {type: categorical, choices: [linear, mlp]}
        proj_depth: {type: int, low: 2, high: 4, when: {projection: mlp}}
        lambda: {type: float, low: 0.0, high: 1.0, step: 0.25}
        proj_width: {type: fixed, value: 64, when: {projection: mlp}}
    """, "g.yaml"))
    grid = space.grid()
    # linear: 5 λ;  mlp: 3 depths x 5 λ  -> 20, each once
    assert len(grid) == 5 + 15 == len({tuple(sorted(c.items())) for c in grid})
    assert {c["lambda"] for c in grid} == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert all(("proj_width" in c) == (c["projection"] == "mlp") for c in grid)
    assert space.fixed() == {}


def test_overrides_pin_parameters_and_are_validated(tmp_path):
    path = write(tmp_path, CONDITIONAL)
    space = load_space(path, {"projection": "mlp", "task": "massive", "lambda_schedule": "alchemyscale"})
    assert space.fixed()["task"] == "massive" and space.params["projection"].kind == "fixed"
    for c in sample(space, 20):
        assert c["projection"] == "mlp" and "proj_width" in c and "scale_interval" in c
    assert problems_of(path, {"lr": 2.0, "colour": "red"}) == [
        f"{path}: override lr: must be in (0, 1), got 2.0",
        f"{path}: override colour: unknown parameter: parameters are the fields of TrialConfig "
        "(alchemy_tune/trial/config.py)",
    ]


def test_yaml_exponent_without_a_dot_is_a_number_where_a_float_is_expected(tmp_path):
    space = load_space(write(tmp_path, "lr: 5e-5\nlambda: {type: categorical, choices: [1e1, 25]}\n"))
    assert space.fixed() == {"lr": 5e-5}
    assert space.params["lambda"].choices == (10.0, 25)
    # text stays text where text is expected: a model name is never turned into a number
    assert load_space(write(tmp_path, "model: '1e5'\n", "m.yaml")).fixed() == {"model": "1e5"}


def test_search_settings_and_objectives(tmp_path):
    space = load_space(write(tmp_path, """
        search:
          objectives: {dev_seen: max, oracle_dev_unseen: max}
          sampler: nsga2
          pruner: none
          gpus_per_trial: 0.5
          cpus_per_trial: 2
          max_concurrent: 4
          seed: 7
          n_startup_trials: 3
          pruner_options: {n_warmup_steps: 2}
          max_evals: 6
          repeats: 3
          replicate_data: true
    """))
    assert space.settings == SearchSettings(objectives=(("dev_seen", "max"), ("oracle_dev_unseen", "max")),
                                            sampler="nsga2", pruner="none", gpus_per_trial=0.5,
                                            cpus_per_trial=2, max_concurrent=4, seed=7, n_startup_trials=3,
                                            pruner_options={"n_warmup_steps": 2}, max_evals=6, repeats=3,
                                            replicate_data=True)
    path = write(tmp_path, """
        search:
          objectives: [[dev_seen, up]]
          metric: test_unseen
          cpus_per_trial: 0
          pruner_options: [1]
          n_startup_trials: -1
          repeats: 0
          replicate_data: 1
    """, "o.yaml")
    assert problems_of(path) == [
        f"{path}: search.objectives[0]: ['dev_seen', 'up']: metric must be one of dev_select, dev_seen, "
        "dev_val, oracle_dev_unseen, mode max or min",
        f"{path}: search.metric: 'test_unseen' is not one of dev_select, dev_seen, dev_val, oracle_dev_unseen "
        "(selecting on test data would leak it)",
        f"{path}: search.cpus_per_trial: expected a number > 0, got 0",
        f"{path}: search.pruner_options: expected {{option: value, ...}} (pruner keyword arguments), got [1]",
        f"{path}: search.n_startup_trials: expected an integer >= 0 or null, got -1",
        f"{path}: search.repeats: expected an integer >= 1 (training seeds per configuration), got 0",
        f"{path}: search.replicate_data: expected true or false (vary the data seed with the training seed), "
        "got 1",
    ]
    # the test languages' dev data chooses only when asked for by name
    path = write(tmp_path, "search: {metric: dev_unseen}\n", "u.yaml")
    assert problems_of(path) == [
        f"{path}: search.metric: 'dev_unseen' is not one of dev_select, dev_seen, dev_val, oracle_dev_unseen "
        "(dev_unseen contains the test languages' dev data; selecting on it is only possible by name, as "
        "oracle_dev_unseen, and every output then says 'oracle')"]
    path = write(tmp_path, "search: {objectives: {dev_seen: max, dev_val: min}, sampler: cmaes}\n", "c.yaml")
    assert problems_of(path) == [
        f"{path}: search.sampler: cmaes optimises one objective: use nsga2, tpe, gp or random for several "
        "objectives"]


def test_ray_optuna_search_accepts_suggest_as_a_define_by_run_space():
    from ray.tune.search.optuna import OptunaSearch

    space = load_space(SPACES / "default.yaml")
    searcher = OptunaSearch(space=space.suggest, metric="dev_select", mode="max", seed=0)
    for i in range(12):
        config = searcher.suggest(f"t{i}")
        assert ("proj_width" in config) == (config["projection"] == "mlp")
        assert isinstance(check_trial_config(config), TrialConfig)
        searcher.on_trial_complete(f"t{i}", {"dev_select": 0.5, "training_iteration": 1})


def test_a_space_survives_pickling_as_ray_ships_it_to_workers():
    import pickle

    space = load_space(SPACES / "lambda.yaml")
    copy = pickle.loads(pickle.dumps(space))
    assert copy == space and copy.grid() == space.grid()


def test_every_shipped_space_selects_without_the_test_languages_and_searches_no_seed():
    from alchemy_tune.core import constants as C

    for path in sorted(SPACES.glob("*.yaml")):
        space = load_space(path)
        metrics = [m for m, _ in (space.settings.objectives or ((space.settings.metric, space.settings.mode),))]
        assert metrics and not any(C.selects_on_test(m) for m in metrics), path
        assert space.settings.metric == C.SELECT, path
        assert "seed" not in space.params or space.params["seed"].kind == "fixed", path


def test_malformed_space_files_are_one_line_naming_the_file(tmp_path):
    """A space nested deeper than any space is (YAML's parser recurses) and a stepped range whose count of
    values overflows are usage errors naming the file and the key, not RecursionError or OverflowError."""
    deep = write(tmp_path, "lr: " + "[" * 3000 + "]" * 3000 + "\n", "deep.yaml")
    with pytest.raises(UsageError, match="deep.yaml: nested too deeply"):
        load_space(deep)
    wide = write(tmp_path, "weight_decay: {type: float, low: 0.0, high: 1.0e308, step: 1.0e-300}\n", "wide.yaml")
    with pytest.raises(UsageError, match=r"wide.yaml: weight_decay.step: \(high - low\) / step must be a finite"):
        load_space(wide)
    # a stepped range too fine to list is sampled, never enumerated
    fine = load_space(write(tmp_path, "weight_decay: {type: float, low: 0.0, high: 1.0, step: 9.313225746154785e-10}\n",
                            "f.yaml"))  # 2**-30: 2**30 values
    p = fine.params["weight_decay"]
    assert p.values() is None and p.can_take(0.5) and not p.can_take(0.5 + 3e-10)
