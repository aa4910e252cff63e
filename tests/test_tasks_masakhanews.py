"""MasakhaNEWS loader: the GitHub release's TSV splits in, a Task out, as ``--data-dir`` loads them."""

from __future__ import annotations

import csv
import dataclasses

import pytest

from alchemy_tune.core.errors import UsageError
from alchemy_tune.tasks import TASKS, TaskOptions, load_task
from release_fixtures import write_masakhanews


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return write_masakhanews(tmp_path_factory.mktemp("news"), n_per_split=(14, 7, 7))


def _rows(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_paper_split_topics_and_headlines(repo):
    task = load_task("masakhanews", TaskOptions(data_dir=str(repo)))
    assert task.seen == ("amh", "eng", "fra", "hau", "swa", "orm", "som")
    assert task.unseen == ("ibo", "lin", "lug", "pcm", "run", "sna", "tir", "xho", "yor")
    assert task.labels == (
        "business", "entertainment", "health", "politics", "religion", "sports", "technology"
    )
    assert set(task.train) == set(task.seen) and set(task.test) == set(task.dev) == set(task.languages)
    rows = _rows(repo / "data" / "yor" / "test.tsv")
    got = [(e.text, task.labels[e.label]) for e in task.test["yor"]]
    assert sorted(got) == sorted((r["headline"], r["category"]) for r in rows)
    assert all(e.text_pair is None for e in task.test["yor"])
    assert set(task.uriel_codes) == set(task.languages)
    assert "masakhanews input: headline" in task.notes


def test_headline_plus_text_keeps_quoted_multiline_bodies(repo):
    task = load_task("masakhanews", TaskOptions(data_dir=str(repo / "data"), variant="headline+text"))
    rows = _rows(repo / "data" / "hau" / "dev.tsv")
    assert "\n" in rows[0]["text"] and '"' in rows[0]["text"] and "\t" in rows[0]["text"]
    assert sorted(e.text for e in task.dev["hau"]) == sorted(f"{r['headline']}\n{r['text']}" for r in rows)
    with pytest.raises(UsageError, match="task-variant: 'body' is not one of headline, headline\\+text"):
        load_task("masakhanews", TaskOptions(data_dir=str(repo), variant="body"))


def test_a_language_with_fewer_topics_keeps_the_seven_labels(tmp_path):
    repo = write_masakhanews(tmp_path, langs=("eng", "sna"), n_per_split=(6, 3, 3))
    three = ("business", "health", "politics")
    write_masakhanews(tmp_path, langs=("sna",), n_per_split=(6, 3, 3), topics=three)
    task = load_task("masakhanews", TaskOptions(data_dir=str(repo), seen=("eng",), unseen=("sna",)))
    assert len(task.labels) == 7
    assert {task.labels[e.label] for e in task.test["sna"]} == {"business", "health", "politics"}


def test_sizes_nested_and_prefixes(repo):
    full = load_task("masakhanews", TaskOptions(data_dir=str(repo)))
    small = load_task("masakhanews", TaskOptions(data_dir=str(repo), train_size=5, dev_size=2, test_size=4))
    large = load_task("masakhanews", TaskOptions(data_dir=str(repo), train_size=10))
    for lang in full.seen:
        assert small.train[lang] == large.train[lang][:5] and set(large.train[lang]) <= set(full.train[lang])
    for lang in full.languages:
        assert small.dev[lang] == full.dev[lang][:2] and small.test[lang] == full.test[lang][:4]


# English's release test file: sorted by category, business first and most frequent (17 rows a cycle)
SKEWED = ("business",) * 5 + ("sports",) * 4 + ("politics",) * 3 + ("health",) * 2 + (
    "entertainment", "religion", "technology")


def test_default_subsets_of_a_test_file_sorted_by_label_cover_its_labels(tmp_path):
    from collections import Counter

    from alchemy_tune.trial.config import TrialConfig

    repo = write_masakhanews(tmp_path, langs=("eng",), n_per_split=(14, 140, 300), topics=SKEWED)
    write_masakhanews(tmp_path, langs=("sna",), n_per_split=(6, 30, 30), topics=("business", "health", "politics"))
    write_masakhanews(tmp_path, langs=("tir",), n_per_split=(6, 5, 4), topics=SKEWED)
    test_rows = _rows(repo / "data" / "eng" / "test.tsv")
    assert {r["category"] for r in test_rows[:120]} == {"business", "entertainment", "health"}  # file order
    defaults = TrialConfig()
    task = load_task("masakhanews", TaskOptions(data_dir=str(repo), seen=("eng",), unseen=("sna", "tir"),
                                                dev_size=defaults.dev_size, test_size=defaults.test_size))
    for split in ("dev", "test"):
        for lang in task.languages:
            path = repo / "data" / lang / f"{split}.tsv"
            in_file = Counter(r["category"] for r in _rows(path))
            chosen = Counter(task.labels[e.label] for e in task.split(split)[lang])
            size = min(getattr(defaults, f"{split}_size"), sum(in_file.values()))
            assert sum(chosen.values()) == size
            assert len(chosen) == min(size, len(in_file)), (split, lang, chosen)
            if size >= 2 * len(in_file):  # beyond the first pass, each label in proportion to the file
                for label, count in in_file.items():
                    assert abs(chosen[label] - size * count / sum(in_file.values())) <= 1.5, (split, lang)
    # a subset smaller than the number of labels takes that many different labels
    small = load_task("masakhanews", TaskOptions(data_dir=str(repo), seen=("eng",), unseen=("sna",), test_size=5))
    assert len({e.label for e in small.test["eng"]}) == 5


def test_subsets_do_not_depend_on_file_order(tmp_path):
    import random

    repo = write_masakhanews(tmp_path, langs=("eng", "yor"), n_per_split=(14, 40, 60), topics=SKEWED)
    options = TaskOptions(data_dir=str(repo), seen=("eng",), unseen=("yor",), dev_size=10, test_size=20)
    before = load_task("masakhanews", options)
    for split in ("dev", "test"):
        path = repo / "data" / "yor" / f"{split}.tsv"
        rows = list(csv.reader(path.open(encoding="utf-8", newline=""), delimiter="\t"))
        body = rows[1:]
        random.Random(split).shuffle(body)
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerows(rows[:1] + body)
    after = load_task("masakhanews", options)
    assert after.test["yor"] == before.test["yor"] and after.dev["yor"] == before.dev["yor"]
    # both input variants are scored on the same articles
    body = load_task("masakhanews", dataclasses.replace(options, variant="headline+text"))
    assert [e.text.split("\n")[0] for e in body.test["yor"]] == [e.text for e in after.test["yor"]]


@pytest.fixture
def two(tmp_path):
    repo = write_masakhanews(tmp_path, langs=("eng", "yor"), n_per_split=(7, 7, 7))
    return repo, TaskOptions(data_dir=str(repo), seen=("eng",), unseen=("yor",))


def test_unknown_category_names_file_and_value(two):
    repo, options = two
    path = repo / "data" / "yor" / "dev.tsv"
    path.write_text(path.read_text(encoding="utf-8").replace("\nsports\t", "\nsport\t", 1), encoding="utf-8")
    with pytest.raises(UsageError, match=r"yor/dev\.tsv:\d+: category 'sport' \(dev\) is not one of the 7"):
        load_task("masakhanews", options)


def test_wrong_columns_missing_file_empty_language(two):
    repo, options = two
    path = repo / "data" / "eng" / "train.tsv"
    original = path.read_text(encoding="utf-8")
    path.write_text(original.replace("category\theadline", "label\theadline", 1), encoding="utf-8")
    expected = r"eng/train\.tsv: expected columns category, headline, text \(missing category\)"
    with pytest.raises(UsageError, match=expected):
        load_task("masakhanews", options)
    path.write_text("category\theadline\ttext\turl\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"train\.tsv: no usable train examples for masakhanews language"):
        load_task("masakhanews", options)
    path.write_text(original, encoding="utf-8")
    (repo / "data" / "yor" / "test.tsv").unlink()
    with pytest.raises(UsageError, match=r"yor/test\.tsv: missing; expected the MasakhaNEWS test split of"):
        load_task("masakhanews", options)
    with pytest.raises(UsageError, match=r"'xyz' not in task masakhanews; valid languages: amh, eng"):
        load_task("masakhanews", TaskOptions(data_dir=str(repo), unseen=("xyz",)))


def test_default_split_matches_the_registry():
    # the paper's lists, spelled out once more so an accidental edit of the registry fails here
    assert TASKS["masakhanews"].seen + TASKS["masakhanews"].held_out == tuple(
        "amh eng fra hau swa orm som ibo lin lug pcm run sna tir xho yor".split()
    )


def test_short_trial_runs_on_release_files(tmp_path, tiny_encoder_dir):
    from alchemy_tune.trial.config import TrialConfig
    from alchemy_tune.trial.train import run_trial

    repo = write_masakhanews(tmp_path, langs=("eng", "hau", "yor"), n_per_split=(14, 7, 7))
    config = TrialConfig(task="masakhanews", data_dir=str(repo), task_variant="headline+text",
                         model=tiny_encoder_dir, num_layers=None, seen=("eng", "hau"), unseen=("yor",),
                         max_steps=3, batch_size=8, max_length=32, evals_per_epoch=1, device="cpu")
    reports = []
    outcome = run_trial(config, lambda metrics, checkpoint: reports.append(metrics))
    assert outcome.status == "completed" and reports
    langs = reports[-1]["langs"]
    assert set(langs) == {"eng", "hau", "yor"} and langs["yor"]["seen"] is False
    assert set(langs["yor"]["test"]) == {"accuracy", "macro_f1"}
    assert 0.0 <= reports[-1]["dev_unseen"] <= 1.0
