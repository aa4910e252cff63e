"""SIB-200 loader: the release's TSV folders in, a Task out; its languages, scripts, roles and subsets.

The fast tests use a small fixture in the release layout (``release_fixtures.write_sib200``); the test of
the real release runs where ``../shared/data/sib-200.tar.xz`` (or ``$ALCHEMY_TUNE_SIB200``, an extracted
copy) exists, as on CI.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from alchemy_tune.core.errors import UsageError
from alchemy_tune.tasks import TASKS, TaskOptions, declared_roles, load_task, script_twins
from alchemy_tune.tasks.flores200 import SCRIPT_TWINS, SEEN, SIB200_LANGUAGES, VAL, script_of
from alchemy_tune.trial.config import TrialConfig
from release_fixtures import write_sib200

SMALL = dict(seen=("eng_Latn", "zho_Hans", "arb_Arab"), val=("fra_Latn",))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return write_sib200(tmp_path_factory.mktemp("sib"))


def test_codes_scripts_labels_and_roles_from_the_release_layout(repo):
    for where in (repo, repo / "data", repo / "data" / "annotated"):
        task = load_task("sib200", TaskOptions(data_dir=str(where), unseen=("yor_Latn",), **SMALL))
        assert task.seen == SMALL["seen"] and task.val == ("fra_Latn",) and task.unseen == ("yor_Latn",)
        assert task.labels == ("science/technology", "travel", "politics", "sports", "health", "entertainment",
                               "geography")
    assert task.uriel_codes["zho_Hans"] == "zho" and task.uriel_codes["arb_Arab"] == "ara"
    assert task.uriel_codes["eng_Latn"] == "eng"
    assert script_of("zho_Hant") == "Hant" and script_of("yor_Latn") == "Latn"
    # the release's files are sorted by topic: the loader keeps the label of each row whatever the order
    assert {task.labels[e.label] for e in task.test["eng_Latn"]} == set(task.labels)
    assert all(task.labels[e.label].split("/")[0].split()[0] in "science travel politics sports health "
               "entertainment geography" for e in task.train["eng_Latn"])


def test_dev_and_test_subsets_are_parallel_nested_and_stratified(repo):
    full = load_task("sib200", TaskOptions(data_dir=str(repo), unseen=("yor_Latn",), **SMALL))
    small = load_task("sib200", TaskOptions(data_dir=str(repo), unseen=("yor_Latn",), dev_size=7, test_size=7,
                                            **SMALL))
    ids = {lang: [e.text.rsplit(" ", 1)[1] for e in small.test[lang]] for lang in small.languages}
    assert len({tuple(v) for v in ids.values()}) == 1  # the same sentences, in the same order, everywhere
    for lang in small.languages:
        assert small.test[lang] == full.test[lang][:7] and small.dev[lang] == full.dev[lang][:7]
        assert len({e.label for e in small.test[lang]}) == 7  # one of every topic first
    train_ids = {e.text.rsplit(" ", 1)[1] for lang in full.seen for e in full.train[lang]}
    held_ids = {e.text.rsplit(" ", 1)[1] for lang in full.languages for split in (full.dev, full.test)
                for e in split[lang]}
    assert not train_ids & held_ids


def test_a_training_row_that_translates_a_test_sentence_is_dropped(tmp_path):
    repo = write_sib200(tmp_path, langs=("eng_Latn", "yor_Latn"))
    path = repo / "data" / "annotated" / "eng_Latn" / "train.tsv"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("2003\ttravel\tleaked sentence 2003\n")
    task = load_task("sib200", TaskOptions(data_dir=str(repo), seen=("eng_Latn",), unseen=("yor_Latn",), val=()))
    assert not any("leaked" in e.text for e in task.train["eng_Latn"])
    assert any("dropped 1 training row(s) whose index_id is a dev or test sentence" in n for n in task.notes)


def test_a_seen_languages_script_twin_is_left_out_and_refused_when_named(repo):
    task = load_task("sib200", TaskOptions(data_dir=str(repo), unseen=("yor_Latn",), **SMALL))
    assert "zho_Hant" not in task.languages and "arb_Latn" not in task.languages
    with pytest.raises(UsageError, match="zho_Hant is the other script of seen language zho_Hans .*script_twins"):
        load_task("sib200", TaskOptions(data_dir=str(repo), unseen=("yor_Latn", "zho_Hant"), **SMALL))
    with pytest.raises(UsageError, match="arb_Latn is the other script of seen language arb_Arab"):
        declared_roles("sib200", TaskOptions(seen=SMALL["seen"], unseen=("arb_Latn",), val=()))
    both = load_task("sib200", TaskOptions(data_dir=str(repo), unseen=("yor_Latn", "zho_Hant"), script_twins=True,
                                           **SMALL))
    assert "zho_Hant" in both.unseen
    # twins neither of which is seen are ordinary held-out languages
    _, val, test = declared_roles("sib200", TaskOptions(seen=("eng_Latn",), val=()))
    assert "ace_Arab" in test and "ace_Latn" in test and "zho_Hant" in test


def test_default_roles_spread_and_counts():
    seen, val, test = declared_roles("sib200", TaskOptions())
    assert (len(seen), len(val), len(test)) == (24, 15, 164)
    assert seen == SEEN and val == VAL
    assert "zho_Hant" not in test and "arb_Latn" not in test and "ace_Latn" in test
    assert len(set(seen) | set(val) | set(test)) == 203 and set(seen + val + test) <= set(SIB200_LANGUAGES)
    assert len({script_of(lang) for lang in seen}) >= 10
    assert len(SCRIPT_TWINS) == 8
    lines = script_twins("sib200", seen)
    assert any(line.startswith("zho_Hans / zho_Hant (zho): zho_Hans seen") for line in lines)
    assert any(line.startswith("ace_Arab / ace_Latn (ace): both held out") for line in lines)


def test_the_task_declares_its_default_sizes_and_a_given_size_wins():
    assert dict(TASKS["sib200"].sizes) == {"train_size": 200, "dev_size": 40, "test_size": 60}
    config = TrialConfig.from_dict({"task": "sib200"})
    assert (config.dev_size, config.test_size, config.train_size) == (40, 60, 200)
    assert TrialConfig.from_dict({"task": "sib200", "test_size": None}).test_size is None
    assert TrialConfig.from_dict({"task": "bible-genre"}).test_size == 120


def test_bad_folders_and_files_are_one_line_errors(tmp_path, repo):
    with pytest.raises(UsageError, match="no SIB-200 language folders under .*data/annotated/<lang>/train.tsv"):
        load_task("sib200", TaskOptions(data_dir=str(tmp_path), unseen=("yor_Latn",), **SMALL))
    broken = write_sib200(tmp_path / "broken", langs=("eng_Latn", "yor_Latn"))
    (broken / "data" / "annotated" / "yor_Latn" / "dev.tsv").write_text("id\tlabel\ttext\n1\tx\ty\n")
    with pytest.raises(UsageError, match=r"yor_Latn/dev.tsv: expected columns index_id, category, text"):
        load_task("sib200", TaskOptions(data_dir=str(broken), seen=("eng_Latn",), unseen=("yor_Latn",), val=()))
    (broken / "data" / "annotated" / "yor_Latn" / "dev.tsv").write_text("index_id\tcategory\ttext\n1\tweather\ty\n")
    with pytest.raises(UsageError, match=r"dev.tsv:2: category 'weather' \(dev\) is not one of the 7"):
        load_task("sib200", TaskOptions(data_dir=str(broken), seen=("eng_Latn",), unseen=("yor_Latn",), val=()))
    with pytest.raises(UsageError, match="unknown language 'xxx_Latn' not in task sib200"):
        load_task("sib200", TaskOptions(data_dir=str(repo), unseen=("xxx_Latn",), seen=("eng_Latn",)))


def test_short_trial_runs_on_release_files(tmp_path, tiny_encoder_dir):
    from alchemy_tune.trial.train import run_trial

    repo = write_sib200(tmp_path, langs=("eng_Latn", "zho_Hans", "zho_Hant", "yor_Latn"))
    config = TrialConfig.from_dict(dict(task="sib200", data_dir=str(repo), model=tiny_encoder_dir, num_layers=None,
                                        seen=["eng_Latn", "zho_Hans"], unseen=["yor_Latn"], val=[], max_steps=3,
                                        batch_size=8, max_length=32, device="cpu", lambda_=1.0))
    reports = []
    outcome = run_trial(config, lambda metrics, checkpoint: reports.append(metrics))
    assert outcome.status == "completed"
    langs = reports[-1]["langs"]
    assert set(langs) == {"eng_Latn", "zho_Hans", "yor_Latn"} and langs["yor_Latn"]["role"] == "unseen"
    assert set(langs["yor_Latn"]["test"]) == {"accuracy", "macro_f1"}


# --------------------------------------------------------------------------- the real release
ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "sib-200.tar.xz"


def real_release(tmp_path_factory) -> Path:
    """An extracted copy of the release: ``$ALCHEMY_TUNE_SIB200`` or the shared archive, extracted once into a
    temporary folder (never into the repository)."""
    given = os.environ.get("ALCHEMY_TUNE_SIB200")
    if given:
        return Path(given)
    if not ARCHIVE.is_file():
        pytest.skip(f"the SIB-200 release is not here ({ARCHIVE}; CI has it)")
    folder = tmp_path_factory.mktemp("sib200-release")
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(folder, filter="data")
    return folder


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return real_release(tmp_path_factory)


def test_the_real_release_every_language_701_99_204_seven_labels_parallel_ids_uriel(release):
    from alchemy_tune.languages.uriel import UrielTable
    from alchemy_tune.tasks.release import read_table
    from alchemy_tune.tasks.sib200 import COLUMNS, TOPICS, find_data_dir

    folder = find_data_dir(str(release), SIB200_LANGUAGES)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(SIB200_LANGUAGES)
    ids: dict[str, set] = {}
    for lang in SIB200_LANGUAGES:
        for split, n in (("train", 701), ("dev", 99), ("test", 204)):
            rows = read_table(folder / lang / f"{split}.tsv", "\t", COLUMNS)
            assert len(rows) == n, (lang, split)
            assert {r.values["category"] for r in rows} == set(TOPICS), (lang, split)
            pairs = {(r.values["index_id"], r.values["category"]) for r in rows}
            assert ids.setdefault(split, pairs) == pairs, (lang, split)  # parallel: same ids, same topics
    assert not ({i for i, _ in ids["train"]} & {i for i, _ in ids["dev"] | ids["test"]})
    task = load_task("sib200", TaskOptions(data_dir=str(release), train_size=10, dev_size=5, test_size=7))
    table = UrielTable.load()
    assert len(task.unseen) == 164 and len(task.val) == 15 and len(task.seen) == 24
    uncovered = [lang for lang, code in task.uriel_codes.items() if code not in table]
    assert not uncovered, f"no URIEL entry: {uncovered}"
    first = [e.label for e in task.test[task.unseen[0]]]
    assert all([e.label for e in task.test[lang]] == first for lang in task.languages)
    assert len(set(first)) == 7


# --------------------------------------------------------------------------- the commands
def test_plan_without_the_data_prints_the_declared_roles_coverage_and_twins():
    from testing.cli import run_cli

    result = run_cli("plan", "--task", "sib200", "--space", "lambda")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "task sib200: 24 seen (trained on), 15 validation (dev chooses), 164 test languages" in out
    assert "(declared lists (data not loaded: Davlan/sib200: not loaded by a plan" in out
    assert "URIEL coverage of syntax_knn+syntax_average+geo (lang2vec):" in out
    assert "zho_Hans / zho_Hant (zho): zho_Hans seen: the other is left out" in out
    assert "machine time: no estimate (the data is not loaded)" in out


def test_plan_of_a_folder_that_is_not_the_release_is_a_one_line_error(tmp_path, repo):
    from testing.cli import one_line_error, run_cli

    (tmp_path / "notes.txt").write_text("not a release")
    one_line_error(run_cli("plan", "--task", "sib200", "--data-dir", str(tmp_path)),
                   "no SIB-200 language folders under", str(tmp_path))
    # the fixture holds 7 of the 205 languages: the default roles name a folder it lacks
    one_line_error(run_cli("plan", "--task", "sib200", "--data-dir", str(repo)), "missing; expected the SIB-200")


def test_plan_of_the_real_release_estimates_machine_time(release):
    from testing.cli import run_cli

    result = run_cli("plan", "--task", "sib200", "--data-dir", str(release), "--space", "lambda")
    assert result.returncode == 0, result.stderr
    assert "164 test languages (never choose) (loaded)" in result.stdout
    line = next(l for l in result.stdout.splitlines() if l.startswith("machine time"))
    assert "one trial" in line and "test passes" in line and "7200 examples" not in line  # the space's size


def test_a_folder_that_is_not_the_release_is_a_one_line_error(tmp_path):
    from testing.cli import one_line_error, run_cli

    (tmp_path / "notes.txt").write_text("not a release")
    result = run_cli("train", "--task", "sib200", "--data-dir", str(tmp_path), "--max-steps", "1")
    one_line_error(result, "no SIB-200 language folders under", str(tmp_path))
    result = run_cli("train", "--task", "sib200", "--unseen", "zho_Hant", "--seen", "zho_Hans")
    one_line_error(result, "zho_Hant is the other script of seen language zho_Hans")


@pytest.mark.slow
def test_a_short_real_trial_on_the_real_release_prints_every_role(release, tmp_path):
    """The bundled e5 encoder (2 layers) on the real release, cut short: the per-language table of the three
    default roles, and a run folder whose tables hold the 203 languages."""
    from alchemy_tune.results.schema import read_metrics
    from testing.cli import run_cli

    out = tmp_path / "run"
    result = run_cli("train", "--task", "sib200", "--data-dir", str(release), "--num-layers", "2", "--train-size",
                     "16", "--dev-size", "7", "--test-size", "7", "--max-steps", "4", "--threads", "2",
                     "--out", str(out))  # not --quiet: in this process it would silence later tests
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    groups = {r[2] for r in rows if len(r) > 3 and r[0].count("_") == 1 and r[0][:3].isalpha()}
    assert groups == {"seen", "val", "TEST"}
    assert any(r[:3] == ["test", "average", "0.000"][:2] or r[:2] == ["test", "average"] for r in rows)
    metrics = read_metrics(str(out)).to_pandas()
    assert metrics["lang"].nunique() == 203
    assert set(metrics.loc[metrics["split"] == "test", "role"]) == {"seen", "val", "unseen"}
