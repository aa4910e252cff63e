"""Which source of language vectors a trial uses: lang2vec's URIEL (the paper's) or URIEL+.

One place that knows both sources, so config validation, the trial and ``plan`` ask by name:
``uriel_source: lang2vec | urielplus`` (a trial parameter, a search dimension and a results column).
"""

from __future__ import annotations

from alchemy_tune.languages import uriel, urielplus
from alchemy_tune.core.errors import UsageError

SOURCES: tuple[str, ...] = ("lang2vec", "urielplus")
DEFAULT_FEATURES: dict[str, str] = {
    "lang2vec": "syntax_knn+syntax_average+geo",  # the paper's default, 505 dims
    "urielplus": urielplus.DEFAULT_FEATURES,  # URIEL+'s counterparts of the paper's sets, 793 dims
}
_PARSERS = {"lang2vec": uriel.parse_feature_spec, "urielplus": urielplus.parse_feature_spec}
_POLICIES = {"lang2vec": uriel.MISSING_POLICIES, "urielplus": urielplus.MISSING_POLICIES}


def _check(source: str) -> str:
    if source not in SOURCES:
        raise UsageError(f"uriel_source: {source!r} is not one of {', '.join(SOURCES)}")
    return source


def parse_features(spec: str, source: str = "lang2vec") -> tuple[str, ...]:
    """Validated set names of ``spec`` for ``source`` (one-line UsageError naming that source's sets)."""
    return _PARSERS[_check(source)](spec)


def missing_policies(source: str = "lang2vec") -> tuple[str, ...]:
    return _POLICIES[_check(source)]


def load_table(source: str = "lang2vec") -> uriel.VectorTable:
    """The process-wide table of ``source`` (read from its cache file, built on first use)."""
    return uriel.UrielTable.load() if _check(source) == "lang2vec" else urielplus.UrielPlusTable.load()


def source_note(code: str, source: str) -> str | None:
    """Why ``code`` (an ISO 639-3 code from :func:`alchemy_tune.languages.codes.to_uriel`) gets another language's
    row in ``source``, or None."""
    return urielplus.mapping_note(code) if _check(source) == "urielplus" else None
