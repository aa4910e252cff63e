"""Plain-text tables with aligned columns, as the commands print them (`plan`, `train`, `analyze`)."""

from __future__ import annotations

from typing import Collection, Sequence


def aligned_lines(header: Sequence[object], rows: Sequence[Sequence[object]], *, right: Collection[int] = (),
                  rule_before: int | None = None) -> list[str]:
    """The table as lines: cells (shown with ``str``) two spaces apart, each column as wide as its widest
    cell, a dashed rule under the header and, with ``rule_before``, another before that row (to set totals
    apart); the columns numbered in ``right`` are right-aligned (numbers). Trailing spaces are stripped."""
    head = [str(h) for h in header]
    body = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = line(["-" * w for w in widths])
    lines = [line(r) for r in body]
    if rule_before is not None:
        lines.insert(rule_before, rule)
    return [line(head), rule] + lines
