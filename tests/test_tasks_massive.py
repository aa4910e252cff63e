"""MASSIVE loader: release JSONL files in, a Task out — through the same path ``--data-dir`` takes."""

from __future__ import annotations

import json
import time

import pytest

from alchemy_tune.core.errors import UsageError
from alchemy_tune.tasks import TASKS, TaskOptions, load_task
from alchemy_tune.tasks.release import hub_rows
from release_fixtures import MASSIVE_INTENTS, write_massive


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_massive(tmp_path_factory.mktemp("massive"), n_per_split=(12, 6, 6))


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_paper_split_and_release_contents(release):
    task = load_task("massive", TaskOptions(data_dir=str(release)))
    assert len(task.seen) == 25 and len(task.unseen) == 27
    assert task.seen == TASKS["massive"].seen and task.unseen == TASKS["massive"].held_out
    assert {"en-US", "zh-TW", "jv-ID"} <= set(task.seen) and {"sw-KE", "sl-SL", "cy-GB"} <= set(task.unseen)
    assert task.kind == "classification" and task.labels == tuple(sorted(MASSIVE_INTENTS))
    # train only from seen locales; dev (for selection on unseen dev) and test for all 52
    assert set(task.train) == set(task.seen)
    assert set(task.dev) == set(task.test) == set(task.languages)
    assert all(len(task.train[lang]) == 12 for lang in task.seen)
    assert all(len(task.dev[lang]) == 6 and len(task.test[lang]) == 6 for lang in task.languages)
    # examples carry the file's utt and its intent
    records = [r for r in _lines(release / "data" / "fa-IR.jsonl") if r["partition"] == "test"]
    got = [(e.text, task.labels[e.label]) for e in task.test["fa-IR"]]
    assert sorted(got) == sorted((r["utt"], r["intent"]) for r in records)
    assert set(task.uriel_codes) == set(task.languages)
    assert all(isinstance(c, str) and len(c) == 3 for c in task.uriel_codes.values())


def test_data_dir_may_be_the_jsonl_folder_or_its_parent(release, tmp_path):
    parent = load_task("massive", TaskOptions(data_dir=str(release)))
    folder = load_task("massive", TaskOptions(data_dir=str(release / "data")))
    assert parent.test == folder.test and parent.train == folder.train
    # the folder holding the extracted release (amazon-massive-dataset-1.1/) works too
    above = load_task("massive", TaskOptions(data_dir=str(release.parent)))
    assert above.dev == parent.dev


def test_training_subsets_are_nested_and_dev_test_are_prefixes(release):
    full = load_task("massive", TaskOptions(data_dir=str(release)))
    small = load_task("massive", TaskOptions(data_dir=str(release), train_size=4, dev_size=2, test_size=3))
    large = load_task("massive", TaskOptions(data_dir=str(release), train_size=8))
    for lang in full.seen:
        assert len(small.train[lang]) == 4
        assert small.train[lang] == large.train[lang][:4]
        assert set(large.train[lang]) <= set(full.train[lang])
    for lang in full.languages:
        assert small.dev[lang] == full.dev[lang][:2] and small.test[lang] == full.test[lang][:3]
    other_seed = load_task("massive", TaskOptions(data_dir=str(release), train_size=4, seed=1))
    assert any(other_seed.train[lang] != small.train[lang] for lang in full.seen)


def test_overrides_need_only_the_named_locales(tmp_path):
    release = write_massive(tmp_path, locales=("en-US", "de-DE", "sw-KE"), n_per_split=(6, 6, 6))
    options = TaskOptions(data_dir=str(release), seen=("en-US", "de-DE"), unseen=("sw-KE",))
    task = load_task("massive", options)
    assert task.seen == ("en-US", "de-DE") and task.unseen == ("sw-KE",)
    assert set(task.train) == {"en-US", "de-DE"} and set(task.test) == {"en-US", "de-DE", "sw-KE"}
    with pytest.raises(UsageError, match="'xx-XX' not in task massive"):
        load_task("massive", TaskOptions(data_dir=str(release), seen=("en-US", "xx-XX")))
    # seen given alone: every other locale becomes unseen, so the missing files are named
    with pytest.raises(UsageError, match=r"missing; expected the MASSIVE 1.1 file of locale"):
        load_task("massive", TaskOptions(data_dir=str(release), seen=("en-US",)))


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


@pytest.fixture
def small(tmp_path):
    release = write_massive(tmp_path, locales=("en-US", "sw-KE"), n_per_split=(6, 6, 6))
    return release, TaskOptions(data_dir=str(release), seen=("en-US",), unseen=("sw-KE",))


def test_unknown_intent_in_dev_names_file_and_label(small):
    release, options = small
    path = release / "data" / "sw-KE.jsonl"
    records = _lines(path)
    records[-8]["intent"] = "cooking_recipe"  # a dev line of sw-KE
    assert records[-8]["partition"] == "dev"
    _write(path, records)
    expected = r"sw-KE\.jsonl:\d+: intent 'cooking_recipe' \(dev\) is not one of the 6"
    with pytest.raises(UsageError, match=expected):
        load_task("massive", options)


def test_intent_sets_must_agree_across_seen_locales(tmp_path):
    release = write_massive(tmp_path, locales=("en-US", "de-DE"), n_per_split=(6, 6, 6))
    write_massive(tmp_path, locales=("de-DE",), n_per_split=(6, 6, 6), intents=tuple(MASSIVE_INTENTS)[:5])
    with pytest.raises(UsageError, match=r"de-DE\.jsonl: training intents differ .*missing iot_hue_lightoff"):
        load_task("massive", TaskOptions(data_dir=str(release), seen=("en-US", "de-DE"), unseen=()))


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"id": "1", "locale": "en-US", "partition": "train"', r"en-US\.jsonl:19: malformed JSON line"),
        ('{"id": "1", "locale": "en-US", "partition": "train", "utt": "hi"}', r"missing field\(s\) intent"),
        ('{"id": "1", "locale": "en-US", "partition": "eval", "intent": "alarm_set", "utt": "hi"}',
         r"partition 'eval'; expected one of train, dev, test"),
        ('{"id": "1", "locale": "de-DE", "partition": "dev", "intent": "alarm_set", "utt": "hi"}',
         r"locale 'de-DE' in the file of en-US"),
    ],
)
def test_bad_lines_name_file_and_line(small, line, expected):
    release, options = small
    path = release / "data" / "en-US.jsonl"
    path.write_text(path.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match=expected):
        load_task("massive", options)


def test_missing_file_and_empty_partition(small):
    release, options = small
    records = [r for r in _lines(release / "data" / "sw-KE.jsonl") if r["partition"] != "test"]
    _write(release / "data" / "sw-KE.jsonl", records)
    with pytest.raises(UsageError, match=r"sw-KE\.jsonl: no usable test examples for massive language sw-KE"):
        load_task("massive", options)
    (release / "data" / "sw-KE.jsonl").unlink()
    with pytest.raises(UsageError, match=r"sw-KE\.jsonl: missing"):
        load_task("massive", options)
    with pytest.raises(UsageError, match="is not a folder"):
        load_task("massive", TaskOptions(data_dir=str(release / "nowhere")))


def test_hub_unreachable_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    unset = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    started = time.monotonic()
    expected = r"cannot reach the Hugging Face hub .*pass --data-dir with the release files"
    with pytest.raises(UsageError, match=expected):
        load_task("massive", TaskOptions(seen=("en-US",), unseen=("sw-KE",)))
    assert time.monotonic() - started < 10


def test_hub_rows_turn_class_labels_into_intent_names():
    from datasets import ClassLabel, Dataset, Features, Value

    # the hub's AmazonScience/massive layout: intent is a class label, utt a string
    features = Features({"locale": Value("string"), "intent": ClassLabel(names=["alarm_query", "alarm_set"]),
                         "utt": Value("string")})
    data = Dataset.from_dict({"locale": ["en-US"] * 2, "intent": [1, 0], "utt": ["wake me", "any alarms"]},
                             features=features)
    rows = hub_rows(data, "hub AmazonScience/massive[en-US]/train")
    assert [r.values["intent"] for r in rows] == ["alarm_set", "alarm_query"]
    assert rows[1].where == "hub AmazonScience/massive[en-US]/train[1]"


def test_short_trial_runs_on_release_files(tmp_path, tiny_encoder_dir):
    from alchemy_tune.trial.config import TrialConfig
    from alchemy_tune.trial.train import run_trial

    release = write_massive(tmp_path, locales=("en-US", "de-DE", "sw-KE"), n_per_split=(12, 6, 6))
    config = TrialConfig(task="massive", data_dir=str(release), model=tiny_encoder_dir, num_layers=None,
                         seen=("en-US", "de-DE"), unseen=("sw-KE",), max_steps=3, batch_size=8, max_length=32,
                         evals_per_epoch=1, device="cpu")
    reports = []
    outcome = run_trial(config, lambda metrics, checkpoint: reports.append(metrics))
    assert outcome.status == "completed" and reports
    langs = reports[-1]["langs"]
    assert set(langs) == {"en-US", "de-DE", "sw-KE"} and langs["sw-KE"]["seen"] is False
    assert langs["sw-KE"]["uriel"] == "swa"
    assert set(langs["sw-KE"]["dev"]) == set(langs["sw-KE"]["test"]) == {"accuracy", "macro_f1"}
    assert 0.0 <= reports[-1]["test_unseen"] <= 1.0


def test_parsed_files_are_memoised_until_the_file_changes(small):
    from alchemy_tune.core.cache import cache_dir

    release, options = small
    path = release / "data" / "sw-KE.jsonl"
    first = load_task("massive", options)
    memos = {p.name for p in (cache_dir() / "release-files").iterdir()}
    again = load_task("massive", options)
    assert again.test == first.test and {p.name for p in (cache_dir() / "release-files").iterdir()} == memos
    records = _lines(path)
    records[-1]["utt"] = "a changed utterance"
    _write(path, records)
    changed = load_task("massive", options)
    assert changed.test["sw-KE"][-1].text == "a changed utterance"
    assert changed.test["sw-KE"][:-1] == first.test["sw-KE"][:-1]


def test_dev_test_subsets_are_the_same_ids_in_every_locale_whatever_the_file_order(tmp_path):
    import random

    locales = ("en-US", "de-DE", "sw-KE")
    release = write_massive(tmp_path, locales=locales, n_per_split=(12, 40, 40))
    options = TaskOptions(data_dir=str(release), seen=locales[:2], unseen=locales[2:], dev_size=12, test_size=9)
    path = release / "data" / "de-DE.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    before = load_task("massive", options)
    random.Random(0).shuffle(lines)  # another locale's file in another order
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    task = load_task("massive", options)
    assert task.dev == before.dev and task.test == before.test

    def utterances(split, locale):  # the fixture's utt = template + " " + locale: strip the locale
        return {(e.text.rsplit(" ", 1)[0], e.label) for e in task.split(split)[locale]}

    for split, size in (("dev", 12), ("test", 9)):
        chosen = [utterances(split, locale) for locale in locales]
        assert len(chosen[0]) == size and chosen[0] == chosen[1] == chosen[2]
        assert len({label for _, label in chosen[0]}) == len(MASSIVE_INTENTS)  # every intent present
