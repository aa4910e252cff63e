"""`alchemy-tune plan` and `--dry-run`: what a paper space would run, with languages and URIEL coverage."""

from pathlib import Path

from release_fixtures import write_massive, write_semrel
from testing.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent


def cli(*args):
    return run_cli(*args, cwd=ROOT)


def test_plan_of_the_paper_massive_space_without_data():
    result = cli("plan", "--space", "search_spaces/paper-massive.yaml", "--show", "5")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "trials: 100 of the grid's 100 configurations (the full grid)" in out
    # no hub here: the loader's own lists; the paper had no validation languages
    assert "25 seen (trained on), 0 validation (dev chooses), 27 test languages (never choose) (declared lists" in out
    assert "selection metric: dev_select (dev split of the seen languages (no validation languages, so = dev_seen)" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:5] in ("sw-KE", "zh-TW", "en-US")}
    assert rows["sw-KE"][1:3] == ["TEST", "swa"] and rows["zh-TW"][1:3] == ["seen", "zho"]
    assert "coverage syntax_knn" in out and "... and 95 more" in out


def test_plan_with_release_files_loads_them(tmp_path):
    data = write_massive(tmp_path / "massive")
    result = cli("plan", "--space", "search_spaces/paper-massive.yaml", "--data-dir", str(data), "--show", "2")
    assert result.returncode == 0, result.stderr
    assert "25 seen (trained on), 0 validation (dev chooses), 27 test languages (never choose) (loaded)" in result.stdout
    # a validation group for a paper task, from the command line: held-out locales that now choose
    result = cli("--dry-run", "--space", "search_spaces/paper-massive.yaml", "--data-dir", str(data),
                 "--set", "val=[it-IT, pl-PL]", "--gpus-per-trial", "0")  # the space's 1 GPU: not on this machine
    assert result.returncode == 0, result.stderr
    assert "25 seen (trained on), 2 validation (dev chooses), 25 test languages (never choose) (loaded)" in result.stdout
    assert "validation: it-IT pl-PL" in result.stdout
    assert "selection metric: dev_select (dev split of the seen + validation languages" in result.stdout
    result = cli("--dry-run", "--space", "search_spaces/paper-massive.yaml", "--data-dir", str(data),
                 "--set", "val=[en-US]", "--gpus-per-trial", "0")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "val: 'en-US' is a seen (training) language" in result.stderr


def test_plan_prints_the_languages_left_out_of_a_split(tmp_path):
    repo = write_semrel(tmp_path, n_per_split=(8, 4, 4))
    result = cli("plan", "--space", "search_spaces/paper-semrel.yaml", "--data-dir", str(repo), "--show", "1")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("notes on the data:\n", 1)[1].splitlines()
    esp = next(line for line in notes if line.startswith("  - semrel esp:"))
    assert "esp_test.csv without a Score column; esp is left out of test scores" in esp
    assert any(line.startswith("  - semrel ind: no dev file in the release") for line in notes)


def test_dry_run_of_the_search_prints_the_same_plan():
    result = cli("--dry-run", "--space", "search_spaces/paper-grid.yaml", "--show", "3")
    assert result.returncode == 2 and "unrecognized arguments: --show" in result.stderr
    result = cli("--dry-run", "--space", "search_spaces/paper-grid.yaml")
    assert result.returncode == 0, result.stderr
    assert "trials: 49 of the grid's 49 configurations (the full grid)" in result.stdout and "(loaded)" in result.stdout
    # the bundled corpus's member codes get the macro-language codes of the paper tasks, and the coverage
    # shown is that of the code used
    from alchemy_tune.languages.uriel import UrielTable

    table = UrielTable.load()
    lines = result.stdout.splitlines()
    header = next(line.split("  ") for line in lines if line.startswith("language"))
    columns = [c.strip() for c in header if c.strip()]
    spec_at = columns.index("coverage syntax_average")
    for member, macro in (("arb", "ara"), ("cmn", "zho"), ("pes", "fas"), ("swh", "swa")):
        row = next(line.split() for line in lines if line.startswith(f"{member} "))
        assert row[2] == macro and f"{member} -> {macro} (" in " ".join(row)
        assert float(row[spec_at]) == round(table.coverage("syntax_average", [macro])[macro], 2)


def test_plan_bad_space_is_one_line(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("lr: {type: float, low: 0.001, high: 1.0e-5}\n")
    result = cli("plan", "--space", str(bad))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "lr.low: low <= high must hold" in result.stderr


def test_plan_of_every_shipped_space_prints_the_three_groups_and_the_selection_metric(capsys, tmp_path):
    """Acceptance: no shipped space selects on test-language data; an oracle space says so on every line."""
    from alchemy_tune.cli.plan import print_plan
    from alchemy_tune.tuning.space_file import load_space

    for path in sorted((ROOT / "search_spaces").glob("*.yaml")):
        print_plan(load_space(path), show=1)
        out = capsys.readouterr().out
        assert "seen (trained on)" in out and "validation (dev chooses)" in out and "test languages" in out, path
        assert "  seen:" in out and "  validation:" in out and "  test:" in out, path
        assert "selection metric: dev_select" in out and "ORACLE" not in out, path
        if "bible" in out:
            assert "validation: ita ukr pes kor" in out
    oracle = tmp_path / "oracle.yaml"
    oracle.write_text("search: {metric: oracle_dev_unseen, trials: 2}\ntask: bible-genre\n")
    print_plan(load_space(oracle))
    assert "selection metric: oracle_dev_unseen — ORACLE" in capsys.readouterr().out


def test_plan_refuses_lambda_zero_with_a_dynamic_schedule(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("lambda: 0\nlambda_schedule: {type: categorical, choices: [constant, alchemytune]}\n")
    result = cli("plan", "--space", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "lambda: 0 with lambda_schedule 'alchemytune' would still train with the URIEL loss" in result.stderr


def test_plan_without_data_prints_the_task_notes_and_applies_the_override_rule(capsys):
    """The registry's notes are printed even when the data is not loaded, and the declared groups follow the
    same override rule as a load (seen given alone: every other language is held out)."""
    from alchemy_tune.trial.config import TrialConfig
    from alchemy_tune.tasks import TASKS, task_languages

    result = cli("plan", "--space", "search_spaces/paper-semrel.yaml", "--show", "1")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("notes on the data:\n", 1)[1].splitlines()
    for note in TASKS["semrel"].notes:
        assert f"  - {note}" in notes
    config = TrialConfig(task="massive", seen=("en-US", "de-DE"))
    seen, val, unseen, source, _ = task_languages("massive", config.task_options())
    assert source.startswith("declared lists") and seen == ("en-US", "de-DE") and val == ()
    assert set(unseen) == set(TASKS["massive"].languages) - {"en-US", "de-DE"}


def test_plan_states_the_smallest_effect_the_design_detects_assumed_or_from_a_prior_run(tmp_path):
    import re

    import math

    from alchemy_tune.analysis import analyze as A
    from alchemy_tune.analysis import paired as P
    from alchemy_tune.analysis.power import ASSUMED, design_mde, languages_for_margin, seeds_for_margin
    from testing.synthetic import make_run

    result = cli("plan", "--space", "search_spaces/study.yaml", "--show", "1")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("test languages (8 × 3 seeds)"))
    one, family = map(float, re.findall(r"\|Δ\| ([0-9.]+)|; ([0-9.]+) for", line)[0][:1] + (
        re.findall(r"; ([0-9.]+) for", line)[0],))
    assert one == round(design_mde(8, 3, **ASSUMED), 4) and "Holm family of 13" in line
    assert "power, planned a priori" in result.stdout
    equivalence = next(x for x in result.stdout.splitlines() if "equivalence within ±0.01" in x)
    need = seeds_for_margin(8, 0.01, **ASSUMED)
    assert f"{need if need else 'more than 50'} seed(s) with 8 languages" in equivalence
    for k in (3, 5, 10):  # the languages the margin needs at each number of seeds
        langs = languages_for_margin(k, 0.01, **ASSUMED)
        assert f"{langs if langs else 'more than 5000'} with {k} seeds" in equivalence
    assert "the Holm family: the 13 configurations of the grid that train with the URIEL loss" in result.stdout
    assert family == round(design_mde(8, 3, **ASSUMED, alpha=0.05 / 13), 4) > one
    assert "assumed (--prior RUN_DIR" in result.stdout
    run = make_run(str(tmp_path / "prior"), n_trials=12, n_langs=16, metric="dev_seen")
    result = cli("plan", "--space", "search_spaces/study.yaml", "--show", "1", "--prior", run)
    assert result.returncode == 0, result.stderr
    table, _ = A.comparisons(A.units(A.load_runs([run])))
    fitted = P.pooled_components(table)  # the unbiased components' means, truncated once
    assert fitted == {k: math.sqrt(max(table[f"var_{k[3:]}_unseen"].mean(), 0)) for k in ASSUMED}
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("test languages (8 × 3 seeds)"))
    assert float(re.findall(r"\|Δ\| ([0-9.]+)", line)[0]) == round(design_mde(8, 3, **fitted), 4)
    assert f"fitted on {run} (pooled over its 3 comparisons)" in result.stdout
    bad = cli("plan", "--space", "search_spaces/study.yaml", "--prior", str(tmp_path / "nope"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_a_plan_opens_no_network_connection_and_says_what_a_run_would_fetch(monkeypatch):
    """paper-massive names a hub data set and two hub encoders: the plan names them and connects nowhere."""
    import socket

    from testing.cli import run_cli

    tried = []

    def refuse(self, address, *args, **kwargs):
        tried.append(address)
        raise OSError("network use in a plan")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: tried.append(a) or [])
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    result = run_cli("plan", "--space", "paper-massive")
    assert result.returncode == 0, result.stderr
    assert tried == []
    out = result.stdout
    assert "AmazonScience/massive: not loaded by a plan, which opens no network connection; a run downloads it" in out
    assert "xlm-roberta-base (not local: a run downloads it from the Hugging Face hub)" in out


def test_plan_says_whether_replicates_vary_the_data_seed(tmp_path, capsys):
    """In-process (print_plan, as `plan` and `--dry-run` call it): the replicates' seed pairs, and a warning
    where a data seed would change nothing (all the data, no control)."""
    from alchemy_tune.cli.plan import print_plan
    from alchemy_tune.tuning.space_file import load_space

    on = tmp_path / "on.yaml"
    on.write_text("search: {sampler: grid, repeats: 3, replicate_data: true}\nseed: 10\ndata_seed: 4\n"
                  "lambda: {type: categorical, choices: [0.0, 0.1]}\n")
    print_plan(load_space(str(on)))
    out = capsys.readouterr().out
    assert ("repeats: 3 replicates per configuration, each on its own training subsets (training seeds 10, 11, 12 "
            "with data seeds 4, 5, 6), 6 trials in all") in out
    on.write_text(on.read_text() + "train_size: null\n")
    print_plan(load_space(str(on)))
    assert "[the data seed changes nothing here: every trial trains on all the data, no control]" in \
        capsys.readouterr().out
