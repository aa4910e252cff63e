"""SemRel 2024 loader: the shared task's Track A/C CSVs in, a pair-regression Task out."""

from __future__ import annotations

import csv

import pytest

from alchemy_tune.core.errors import UsageError
from alchemy_tune.tasks import TaskOptions, load_task, semrel
from release_fixtures import write_semrel


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return write_semrel(tmp_path_factory.mktemp("semrel"), n_per_split=(12, 6, 6))


def _rows(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))[1:]


def test_paper_split_pairs_and_scores(repo):
    task = load_task("semrel", TaskOptions(data_dir=str(repo)))
    assert task.seen == ("amh", "arq", "ary", "eng", "esp", "hau", "kin", "mar", "tel")
    assert task.unseen == ("afr", "arb", "hin", "ind", "pan")
    assert task.kind == "pair_regression" and task.metrics == ("pearson", "spearman") and task.num_labels == 1
    assert set(task.train) == set(task.seen)
    assert set(task.test) == set(task.languages) - {"esp"} and set(task.dev) == set(task.languages) - {"ind"}
    rows = _rows(repo / "Track A" / "eng" / "eng_train.csv")
    expected = {(r[1].split("\n")[0], r[1].split("\n")[1], float(r[2])) for r in rows}
    assert {(e.text, e.text_pair, e.label) for e in task.train["eng"]} == expected
    scores = [e.label for split in (task.train, task.dev, task.test) for v in split.values() for e in v]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert task.uriel_codes["esp"] == "spa"
    assert any(note.startswith("esp -> spa") for note in task.notes)


def test_release_quirks(repo):
    task = load_task("semrel", TaskOptions(data_dir=str(repo)))
    # tel's test file quotes each sentence inside the field; the quotes are not part of the text
    raw = _rows(repo / "Track A" / "tel" / "tel_test_with_labels.csv")[0][1]
    assert raw.startswith('"') and raw.split("\n")[0][1:-1] in {e.text for e in task.test["tel"]}
    # afr's dev header spells the score column 'score'
    assert len(task.dev["afr"]) == 6
    # afr's labelled test file separates the two sentences with a TAB
    raw = _rows(repo / "Track C" / "afr" / "afr_test_with_labels.csv")
    assert all("\t" in r[1] and "\n" not in r[1] for r in raw)
    expected = {(r[1].split("\t")[0], r[1].split("\t")[1], float(r[2])) for r in raw}
    assert {(e.text, e.text_pair, e.label) for e in task.test["afr"]} == expected
    # arq's test sentences: the space after the newline is not part of the second sentence
    assert all(not e.text_pair.startswith(" ") for e in task.test["arq"])
    # ind was released with a test split only: no dev, said in the notes, test still there
    assert "ind" not in task.dev and len(task.test["ind"]) == 6
    assert any(n.startswith("semrel ind: no dev file in the release") for n in task.notes)


@pytest.mark.parametrize("track", ["", "Track A", "Track C"])
def test_a_seen_language_without_labelled_test_is_scored_on_dev_only(repo, track):
    # esp: the release has esp_test.csv (PairID,Text: no scores) in both tracks and no labelled test file
    for folder in ("Track A", "Track C"):
        assert _rows(repo / folder / "esp" / "esp_test.csv")[0][0].startswith("ESP-test-")
        assert not (repo / folder / "esp" / "esp_test_with_labels.csv").exists()
    task = load_task("semrel", TaskOptions(data_dir=str(repo / track)))
    assert "esp" in task.seen and len(task.train["esp"]) == 12 and len(task.dev["esp"]) == 6
    assert "esp" not in task.test
    note = next(n for n in task.notes if n.startswith("semrel esp:"))
    assert "esp_test.csv without a Score column" in note and "left out of test scores" in note


def test_data_dir_may_be_a_track_folder(repo):
    whole = load_task("semrel", TaskOptions(data_dir=str(repo)))
    for track in ("Track A", "Track C"):
        one = load_task("semrel", TaskOptions(data_dir=str(repo / track)))
        assert one.test == whole.test and one.train == whole.train and one.dev == whole.dev


def test_track_c_alone_serves_the_unseen_languages(tmp_path):
    repo = write_semrel(tmp_path, langs=("eng", "afr", "hin", "ind"), n_per_split=(8, 6, 6))
    task = load_task("semrel", TaskOptions(data_dir=str(repo / "Track C"), seen=("eng",), unseen=("afr", "hin", "ind")))
    assert set(task.test) == {"eng", "afr", "hin", "ind"} and set(task.dev) == {"eng", "afr", "hin"}
    assert {e.text for e in task.test["hin"]} and not any('"' in e.text for e in task.test["hin"])


def test_sizes_nested_and_prefixes(repo):
    full = load_task("semrel", TaskOptions(data_dir=str(repo)))
    small = load_task("semrel", TaskOptions(data_dir=str(repo), train_size=3, test_size=2, dev_size=1))
    large = load_task("semrel", TaskOptions(data_dir=str(repo), train_size=9))
    for lang in full.seen:
        assert small.train[lang] == large.train[lang][:3] and set(large.train[lang]) <= set(full.train[lang])
    for lang in full.test:
        assert small.test[lang] == full.test[lang][:2]


@pytest.fixture
def two(tmp_path):
    repo = write_semrel(tmp_path, langs=("eng", "afr"), n_per_split=(6, 6, 6))
    return repo, TaskOptions(data_dir=str(repo), seen=("eng",), unseen=("afr",))


def _rewrite(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def test_bad_scores_columns_and_pairs(two):
    repo, options = two
    path = repo / "Track A" / "eng" / "eng_dev_with_labels.csv"
    rows = _rows(path)
    _rewrite(path, ["PairID", "Text", "Score"], [rows[0][:2] + ["1.7"]] + rows[1:])
    expected = r"eng_dev_with_labels\.csv:2: Score '1\.7' is not a number in \[0, 1\]"
    with pytest.raises(UsageError, match=expected):
        load_task("semrel", options)
    _rewrite(path, ["PairID", "Sentence", "Score"], rows)
    with pytest.raises(UsageError, match=r"expected columns PairID, Text, Score \(missing Text\)"):
        load_task("semrel", options)
    # one row that is not a pair is dropped (and counted); a file with no pair left is an error
    _rewrite(path, ["PairID", "Text", "Score"], [[rows[0][0], "only one sentence", "0.5"]] + rows[1:])
    task = load_task("semrel", options)
    assert len(task.dev["eng"]) == 5 and any("dropped 1 row(s)" in note for note in task.notes)
    _rewrite(path, ["PairID", "Text", "Score"], [[r[0], "one", r[2]] for r in rows])
    with pytest.raises(UsageError, match=r"no usable dev examples for semrel language eng"):
        load_task("semrel", options)


def test_missing_files_and_seen_language_without_training_data(two):
    repo, options = two
    (repo / "Track C" / "afr" / "afr_test_with_labels.csv").unlink()
    task = load_task("semrel", options)  # afr's dev is still scored
    assert "afr" not in task.test and len(task.dev["afr"]) == 6
    assert any(n.startswith("semrel afr: the release has no afr_test_with_labels.csv") for n in task.notes)
    for name in ("afr_test.csv", "afr_dev_with_labels.csv"):
        (repo / "Track C" / "afr" / name).unlink()
    expected = (r"semrel afr: no labelled dev or test data \(dev: the release has no afr_dev_with_labels\.csv, "
                r"only .*afr_dev\.csv without a Score column; test: no test file in the release "
                r"\('.*Track C/afr/afr_test_with_labels\.csv' missing\)\); afr cannot be scored")
    with pytest.raises(UsageError, match=expected):
        load_task("semrel", options)
    expected = r"afr_train\.csv' missing; expected the SemRel 2024 train file of afr"
    with pytest.raises(UsageError, match=expected):
        load_task("semrel", TaskOptions(data_dir=str(repo), seen=("eng", "afr"), unseen=()))


def test_an_early_release_plain_file_with_scores_is_read(two):
    repo, options = two
    folder = repo / "Track A" / "eng"
    labelled = folder / "eng_dev_with_labels.csv"
    (folder / "eng_dev.csv").write_bytes(labelled.read_bytes())  # early releases: scores in the plain file
    expected = load_task("semrel", options).dev["eng"]
    labelled.unlink()
    assert load_task("semrel", options).dev["eng"] == expected


def test_split_pair_layouts():
    assert semrel.split_pair("a b\nc d") == ("a b", "c d")
    assert semrel.split_pair('"a b"\r\n"c d"') == ("a b", "c d")
    assert semrel.split_pair("a\nb\nc") is None and semrel.split_pair("a\n  ") is None
    assert semrel.split_pair("a b.\tc d.") == ("a b.", "c d.") and semrel.split_pair("a\n b") == ("a", "b")
    assert semrel.split_pair("a\tb\nc") == ("a\tb", "c")  # a TAB separates only in a one-line field
    assert semrel.split_pair("a\tb\tc") is None


def test_short_trial_runs_on_release_files(tmp_path, tiny_encoder_dir):
    import math

    from alchemy_tune.trial.config import TrialConfig
    from alchemy_tune.trial.train import run_trial

    repo = write_semrel(tmp_path, langs=("eng", "esp", "afr", "ind"), n_per_split=(16, 8, 8))
    config = TrialConfig(task="semrel", data_dir=str(repo), model=tiny_encoder_dir, num_layers=None,
                         seen=("eng", "esp"), unseen=("afr", "ind"), max_steps=3, batch_size=8, max_length=32,
                         evals_per_epoch=1, device="cpu")
    reports = []
    outcome = run_trial(config, lambda metrics, checkpoint: reports.append(metrics))
    assert outcome.status == "completed" and reports
    langs = reports[-1]["langs"]
    assert set(langs) == {"eng", "esp", "afr", "ind"}
    assert set(langs["afr"]["test"]) == {"pearson", "spearman"}
    assert math.isfinite(langs["afr"]["test"]["pearson"])
    assert "dev" not in langs["ind"] and "test" in langs["ind"]  # ind: released without a dev split
    assert "test" not in langs["esp"] and "dev" in langs["esp"]  # esp: no labelled test file
    assert math.isfinite(reports[-1]["test_seen"])  # the seen average is over the languages with test


def test_offline_mode_without_cache_is_a_usage_error(tmp_path):
    import os
    import subprocess
    import sys

    # HF_HUB_OFFLINE is read when datasets is imported, hence a fresh interpreter with an empty cache
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    code = ("from alchemy_tune.tasks import load_task, TaskOptions\n"
            "load_task('semrel', TaskOptions(seen=('eng',), unseen=('afr',)))\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("alchemy_tune.core.errors.UsageError: SemRel/SemRel2024: cannot reach the Hugging Face")
    assert last.endswith("pass --data-dir with the release files")
