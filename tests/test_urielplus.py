"""URIEL+ vectors: equal to URIEL+'s own query API for every language of the four tasks, per set.

The integration of URIEL+ (the package's own ``integrate_databases``) takes one to two minutes. The fast
tier reads the table the session's cache holds (built once, by whichever test needs it first); the slow
tier integrates URIEL+ once more to compare every vector with the package's own query API.
"""

import numpy as np
import pytest

from alchemy_tune.languages import urielplus
from alchemy_tune.languages.codes import to_uriel
from alchemy_tune.tasks import TASKS
from alchemy_tune.languages.uriel import read_or_build
from testing.cli import one_line_error, run_cli, run_cli_process
from testing.urielplus_api import query_vectors

# Every language of the bundled corpus, MASSIVE, MasakhaNEWS and SemRel 2024 (dataset codes).
BUNDLED = "eng deu fra pol rus arb hin cmn tur ind spa ita por ron ukr ben pes tgl jpn kor vie swh".split()
MASSIVE = list(TASKS["massive"].languages)  # the 52 locales, from the task registry
MASAKHANEWS = "amh eng fra hau swa orm som ibo lin lug pcm run sna tir xho yor".split()
SEMREL = "amh arq ary eng esp hau kin mar tel afr arb hin ind pan".split()
ALL = list(dict.fromkeys(BUNDLED + MASSIVE + MASAKHANEWS + SEMREL))

@pytest.fixture(scope="module")
def integrated():
    """URIEL+ integrated by its own code, and this session's cache file written from it."""
    u = urielplus.integrated()
    arrays = urielplus.build_arrays(u)
    read_or_build(urielplus.cache_path(), urielplus._FORMAT, lambda: arrays)
    urielplus.MEMO.forget()
    return u


@pytest.fixture(scope="module")
def table():
    """The table trials read: the session's cache file, built from URIEL+'s integration if not there yet."""
    return urielplus.UrielPlusTable.load()


def test_every_task_language_has_an_entry(table):
    missing = [lang for lang in ALL if to_uriel(lang) not in table]
    assert not missing
    # macro-languages have no Glottocode in URIEL+: their member language's row, said in a note
    assert table.glottocode(to_uriel("ar-SA")) == table.glottocode("arb")
    assert "member 'arb'" in urielplus.mapping_note("ara")
    assert urielplus.mapping_note("eng") is None


@pytest.mark.slow
@pytest.mark.parametrize("feature_set", urielplus.FEATURE_SETS)
def test_vectors_equal_urielplus_query_api(integrated, table, feature_set):
    codes = [to_uriel(lang) for lang in ALL]
    glottocodes = [table.glottocode(code) for code in codes]
    expected = query_vectors(integrated, feature_set, glottocodes)
    assert expected.shape == (len(codes), table.dim(feature_set)) and expected.shape[1] > 0
    ours = table.vectors(feature_set, codes, missing="zero")
    np.testing.assert_array_equal(ours, np.where(expected == -1, 0, expected))
    coverage = table.coverage(feature_set, codes)
    np.testing.assert_allclose([coverage[c] for c in codes], (expected != -1).mean(axis=1))
    assert table.feature_names(feature_set)[:3] == [str(n) for n in
                                                   _names(integrated, feature_set)[:3]]


def _names(u, feature_set):
    matrix, prefix = urielplus._SETS[feature_set]
    return [f for f in u.feats[matrix] if str(f).startswith(prefix)]


def test_mean_policy_fills_gaps_with_the_column_mean(table):
    raw = table.vectors("syntactic", ["eng", "pcm"], missing="zero")
    filled = table.vectors("syntactic", ["eng", "pcm"], missing="mean")
    gaps = table._raw("syntactic", table._rows(["eng", "pcm"])) == -1
    assert gaps.any() and np.array_equal(filled[~gaps], raw[~gaps])
    assert ((filled[gaps] > 0) & (filled[gaps] < 1)).any()  # means, not zeros


@pytest.mark.parametrize("args, needle", [
    (["--uriel-source", "urielplus", "--uriel-features", "syntax_knn+geo"],
     "valid for uriel_source urielplus: syntactic, phonological"),
    (["--uriel-source", "lang2vec", "--uriel-features", "syntactic"], "valid: syntax_wals"),
    (["--uriel-source", "urielplus", "--missing", "knn"], "not a policy of uriel_source urielplus; valid: zero, mean"),
    (["--uriel-source", "uriel++"], "uriel_source: 'uriel++' is not one of lang2vec, urielplus"),
])
def test_bad_sets_per_source_are_one_line_and_exit_2(args, needle, tiny_encoder_dir):
    one_line_error(run_cli("train", "--model", tiny_encoder_dir, *args), needle)


@pytest.mark.slow
def test_train_runs_with_urielplus_on_the_bundled_task(table, tiny_encoder_dir, tmp_path):
    from alchemy_tune.results.schema import read_trials

    out = tmp_path / "run"
    result = run_cli_process("train", "--uriel-source", "urielplus", "--model", tiny_encoder_dir, "--train-size", "16",
                 "--dev-size", "8", "--test-size", "8", "--seen", "eng,arb", "--unseen", "swh",
                 "--batch-size", "8", "--max-steps", "3", "--num-layers", "none", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "URIEL syntactic+geographic" in result.stdout
    (row,) = read_trials(str(out)).to_pylist()
    assert row["cfg_uriel_source"] == "urielplus" and row["cfg_uriel_features"] == "syntactic+geographic"
    assert row["status"] == "completed"
