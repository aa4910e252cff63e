"""The commands' text tables: aligned columns, a rule under the header, numbers right-aligned."""

from alchemy_tune.core.aligned import aligned_lines


def test_columns_align_and_rules_fall_where_asked():
    lines = aligned_lines(["lang", "acc"], [["eng", 0.5], ["swh", 12.25], ["mean", 6.4]], right={1}, rule_before=2)
    assert lines == ["lang    acc",
                     "----  -----",
                     "eng     0.5",
                     "swh   12.25",
                     "----  -----",
                     "mean    6.4"]
    # left-aligned cells leave no trailing spaces
    assert aligned_lines(["a", "b"], [["long cell", ""]]) == ["a          b", "---------  -", "long cell"]
