"""URIEL vectors: spec parsing, equality with lang2vec.get_features, missing policies, the disk cache."""

from __future__ import annotations

import importlib.resources
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from alchemy_tune.languages import uriel
from alchemy_tune.core.errors import UsageError
from alchemy_tune.languages.uriel import FEATURE_SETS, UrielTable, parse_feature_spec

# eng: complete; arb/yor/tir: partly missing; pcm: no observed syntax; zho/swa: macro codes absent from
# lang2vec.LANGUAGES but present in its archives; aaa: an obscure language with almost nothing observed.
LANGS = ["eng", "arb", "yor", "tir", "pcm", "zho", "swa", "aaa"]


@pytest.fixture(scope="module")
def l2v():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources deprecation
        import lang2vec.lang2vec as module
    return module


@pytest.fixture(scope="module")
def table() -> UrielTable:
    return UrielTable.load()


@pytest.fixture(scope="module")
def session_cache_file(table):
    """The cache file of the test session (module scope: computed before ``fresh_cache`` moves the cache)."""
    return uriel.cache_path()


def reference(l2v, langs, spec, missing_as=0.0) -> np.ndarray:
    out = l2v.get_features(list(langs), spec)
    rows = [[missing_as if v == "--" else float(v) for v in out[lang]] for lang in langs]
    return np.array(rows, np.float32)


# ----------------------------------------------------------------------------- spec parsing
def test_parse_feature_spec_keeps_order_and_normalises():
    assert parse_feature_spec("syntax_knn+syntax_average+geo") == ("syntax_knn", "syntax_average", "geo")
    assert parse_feature_spec(" Geo + fam ") == ("geo", "fam")


@pytest.mark.parametrize("spec, must_contain", [
    ("syntax_knn+syntx_average", ["'syntx_average'", "did you mean syntax_average", "valid: syntax_wals"]),
    ("geography", ["'geography'", "valid:"]),
    ("learned", ["'learned'", "pickled"]),
    ("geo+geo", ["geo", "more than once"]),
    ("", ["empty"]),
    ("syntax_knn++geo", ["''"]),
])
def test_parse_feature_spec_errors_are_one_line(spec, must_contain):
    with pytest.raises(UsageError) as err:
        parse_feature_spec(spec)
    message = str(err.value)
    assert "\n" not in message
    for text in must_contain:
        assert text in message


def test_feature_sets_are_lang2vecs_without_learned(l2v):
    assert FEATURE_SETS == tuple(s for s in l2v.FEATURE_SETS if s != "learned")


def test_missing_policies_match_the_config():
    from alchemy_tune.languages.vectors import missing_policies

    assert uriel.MISSING_POLICIES == missing_policies("lang2vec")


# ----------------------------------------------------------------------------- shape and names
def test_dims(table):
    assert table.dim("syntax_knn") == 103
    assert table.dim("geo") == 299
    assert table.dim("syntax_knn+syntax_average+geo") == 505
    assert table.vectors("syntax_knn+syntax_average+geo", ["eng", "swa"]).shape == (2, 505)
    assert table.vectors("syntax_knn", ["eng"]).dtype == np.float32


def test_languages_are_every_code_lang2vec_accepts(table, l2v):
    assert len(table.languages) == len(set(table.languages)) > 7000
    # lang2vec.LANGUAGES is a buggy subset (see uriel's docstring); every one of them is here.
    assert set(l2v.LANGUAGES) <= set(table.languages)
    assert {"ara", "fas", "swa"} - set(l2v.LANGUAGES) == {"ara", "fas", "swa"}
    assert {"ara", "fas", "swa"} <= set(table.languages)


# ----------------------------------------------------------------------------- equality with lang2vec
@pytest.mark.parametrize("spec", [
    "syntax_knn", "syntax_average", "geo", "syntax_wals", "syntax_sswl", "phonology_wals", "phonology_knn",
    "phonology_average", "inventory_phoible_aa", "inventory_ethnologue", "inventory_average", "id", "fam",
    "syntax_knn+syntax_average+geo",
])
def test_equals_lang2vec_get_features(table, l2v, spec):
    out = l2v.get_features(LANGS, spec, header=True)  # once: 'fam' costs lang2vec ~3 s per call
    expected = np.array([[0.0 if v == "--" else float(v) for v in out[lang]] for lang in LANGS], np.float32)
    got = table.vectors(spec, LANGS, missing="zero")
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert table.feature_names(spec) == [str(name) for name in out["CODE"]]


def test_language_order_and_repeats_follow_the_request(table):
    one = table.vectors("syntax_wals+geo", ["yor", "eng"])
    two = table.vectors("syntax_wals+geo", ["eng", "yor", "eng"])
    np.testing.assert_array_equal(one[[1, 0, 1]], two)
    assert not np.array_equal(one[0], one[1])


# ----------------------------------------------------------------------------- missing policies
def _archive_mean(prefix: str) -> np.ndarray:
    """Column means of feature_averages.npz over languages with a value, computed straight from lang2vec."""
    path = importlib.resources.files("lang2vec") / "data" / "feature_averages.npz"
    with importlib.resources.as_file(path) as file, np.load(file) as npz:
        columns = [i for i, name in enumerate(npz["feats"]) if name.startswith(prefix)]
        data = npz["data"][:, columns, 0]
    have = data != -1
    return (np.where(have, data, 0).sum(0) / have.sum(0)).astype(np.float32)


def test_missing_policies_fill_exactly_the_missing_cells(table, l2v):
    langs = ["arb", "pcm", "eng"]
    raw = reference(l2v, langs, "syntax_average", missing_as=-1.0)
    gaps = raw == -1
    assert gaps[0].any() and gaps[1].all() and not gaps[2].any()

    zero = table.vectors("syntax_average", langs, missing="zero")
    mean = table.vectors("syntax_average", langs, missing="mean")
    knn = table.vectors("syntax_average", langs, missing="knn")
    for filled in (zero, mean, knn):
        np.testing.assert_array_equal(filled[~gaps], raw[~gaps])
    assert (zero[gaps] == 0).all()

    column_mean = np.broadcast_to(_archive_mean("S_"), raw.shape)
    np.testing.assert_allclose(mean[gaps], column_mean[gaps], rtol=1e-6)

    predicted = reference(l2v, langs, "syntax_knn")
    np.testing.assert_array_equal(knn[gaps], predicted[gaps])
    # The kNN fill is not the mean fill (a policy that silently did the same thing would pass above).
    assert not np.array_equal(knn[gaps], mean[gaps])


def test_policies_agree_where_nothing_is_missing(table):
    for spec in ("geo", "syntax_knn", "fam"):
        zero = table.vectors(spec, ["pcm", "aaa"], missing="zero")
        for policy in ("mean", "knn"):
            np.testing.assert_array_equal(table.vectors(spec, ["pcm", "aaa"], missing=policy), zero)


def test_knn_policy_on_a_wals_set_uses_predictions_then_nothing_is_missing(table):
    knn = table.vectors("syntax_wals+phonology_wals+inventory_phoible_aa", ["aaa"], missing="knn")
    predicted = table.vectors("syntax_knn+phonology_knn+inventory_knn", ["aaa"])
    assert table.coverage("syntax_wals+phonology_wals+inventory_phoible_aa", ["aaa"])["aaa"] < 0.1
    np.testing.assert_array_equal(knn, predicted)


def test_unknown_policy_and_language_are_usage_errors(table):
    with pytest.raises(UsageError, match="'median'.*zero, mean, knn"):
        table.vectors("geo", ["eng"], missing="median")
    with pytest.raises(UsageError, match="'engl'.*close codes:.*eng") as err:
        table.vectors("geo", ["eng", "engl"])
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="list of codes"):
        table.vectors("geo", "eng")


# ----------------------------------------------------------------------------- coverage
def test_coverage_counts_real_values(table, l2v):
    spec = "syntax_knn+syntax_average+geo"
    out = l2v.get_features(LANGS, spec)
    expected = {lang: sum(v != "--" for v in out[lang]) / len(out[lang]) for lang in LANGS}
    got = table.coverage(spec, LANGS)
    assert got == pytest.approx(expected, abs=1e-12)
    assert got["eng"] == 1.0
    assert table.coverage("syntax_average", ["pcm"]) == {"pcm": 0.0}
    assert 0 < got["pcm"] < 1


# ----------------------------------------------------------------------------- the disk cache
@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ALCHEMY_TUNE_CACHE", str(tmp_path))
    uriel.MEMO.forget()
    yield tmp_path
    uriel.MEMO.forget()  # the next test reloads from the session's cache folder


def test_cache_is_built_once_then_reused(fresh_cache, monkeypatch):
    builds = []
    real_build = uriel._build_arrays
    monkeypatch.setattr(uriel, "_build_arrays", lambda: builds.append(1) or real_build())

    first = UrielTable.load()
    path = fresh_cache / "uriel-lang2vec-1.1.2.npz"
    assert path.is_file() and len(builds) == 1
    assert sorted(os.listdir(fresh_cache)) == [path.name]  # no temporary file left behind
    assert UrielTable.load() is first  # memoised per process

    stamp = path.stat().st_mtime_ns
    uriel.MEMO.forget()
    second = UrielTable.load()
    assert len(builds) == 1 and path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(second.vectors("syntax_knn+geo+fam", LANGS),
                                  first.vectors("syntax_knn+geo+fam", LANGS))


def test_a_torn_cache_file_is_rebuilt(table, session_cache_file, fresh_cache):
    path = fresh_cache / "uriel-lang2vec-1.1.2.npz"
    expected = table.vectors("syntax_average+geo", LANGS)
    whole = session_cache_file.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    uriel.MEMO.forget()
    np.testing.assert_array_equal(UrielTable.load().vectors("syntax_average+geo", LANGS), expected)
    with np.load(path) as npz:  # the replacement is complete again
        assert int(npz["format"]) == uriel._FORMAT


def test_concurrent_builders_leave_one_complete_file(fresh_cache):
    code = ("from alchemy_tune.languages.uriel import UrielTable; "
            "print(UrielTable.load().vectors('syntax_knn+geo', ['swh']).sum())")
    env = {**os.environ, "ALCHEMY_TUNE_CACHE": str(fresh_cache)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs[0] == outputs[1] == str(UrielTable.load().vectors("syntax_knn+geo", ["swh"]).sum())
    assert sorted(os.listdir(fresh_cache)) == ["uriel-lang2vec-1.1.2.npz"]
