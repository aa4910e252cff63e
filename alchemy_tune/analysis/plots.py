"""PNG plots of the analysis tables (matplotlib, Agg backend: no display needed).

Each function takes a table from ``analyze``/``importance`` and a path, writes one readable figure
(title, labelled axes, language names) and returns the path, or None when the table is empty.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

_DPI = 100


def error_bars(mean, lo, hi) -> np.ndarray:
    """matplotlib's [2, n] error lengths of intervals around ``mean``: 0 where an interval is missing, and
    where an estimate lies outside its interval (a per-language Δ of the seeds' scores against an interval
    of the test examples' answers) the bar stops at the estimate instead of failing the plot."""
    mean, lo, hi = (np.asarray(x, dtype=float) for x in (mean, lo, hi))
    return np.clip(np.nan_to_num(np.vstack([mean - lo, hi - mean])), 0.0, None)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 11, "axes.titlesize": 13, "axes.labelsize": 12, "figure.dpi": _DPI})
    return plt


def _err(values) -> np.ndarray | None:
    arr = np.asarray(values, dtype=float)
    return None if np.all(np.isnan(arr)) else np.nan_to_num(arr)


def _save(fig, path: Path, tag: str = "") -> Path:
    if tag:  # e.g. oracle selection: said on the figure itself
        fig.suptitle(tag, color="tab:red", fontsize=11)
    fig.tight_layout()
    # the saved image grows to hold every label, title and legend (nothing cut off at an edge)
    tmp = path.with_name(f".{path.name}.tmp")  # never a half-written image in its place (a full disk)
    try:
        fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight", pad_inches=0.15)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


ROLE_STYLE = {"seen": ("seen (trained on)", "white"), "val": ("validation (chooses)", "0.93"),
              "unseen": ("test (never trained on, never chooses)", "0.82")}


def per_language(table: pd.DataFrame, metric_label: str, path: Path, tag: str = "") -> Path | None:
    """Grouped bars per language (named): plain fine-tuning vs one configuration; the three roles apart, in
    the protocol's order (seen, validation, test), each on its own background."""
    from matplotlib.patches import Patch

    series = [c for c in table.columns if c not in ("language", "lang", "role", "seen", "uriel_code")]
    if table.empty or not series:
        return None
    if "role" in table:
        order = {role: i for i, role in enumerate(ROLE_STYLE)}
        table = table.assign(_o=table["role"].map(order)).sort_values(["_o", "language"]).drop(columns="_o")
    roles = table["role"] if "role" in table else table["seen"].map({True: "seen", False: "unseen"})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(7, 0.45 * len(table) + 2), 5))
    x, width = np.arange(len(table)), 0.8 / len(series)
    for i, role in enumerate(roles):
        ax.axvspan(i - 0.5, i + 0.5, color=ROLE_STYLE.get(role, ROLE_STYLE["unseen"])[1], zorder=0)
    for i, name in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, table[name], width, label=name)
    ax.set_xticks(x, table["language"], rotation=60, ha="right")
    ax.set_xlabel("language, by role")
    ax.set_ylabel(metric_label)
    ax.set_title(f"Per-language {metric_label}")
    handles, labels = ax.get_legend_handles_labels()
    shown = [r for r in ROLE_STYLE if r in set(roles)]
    handles += [Patch(facecolor=ROLE_STYLE[r][1], edgecolor="0.6") for r in shown]
    labels += [ROLE_STYLE[r][0] for r in shown]
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _save(fig, path, tag)


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list, np.ndarray)):
        return ",".join(map(str, value))
    return str(value)


def row_labels(table: pd.DataFrame, label_col: str, width: int = 42) -> tuple[list[str], str]:
    """(one label per row naming only the settings that differ between the rows, wrapped; the settings
    every row shares, for the caption)."""
    import textwrap

    cols = list(table.columns)
    settings = [c for c in cols[:cols.index(label_col)] if c != "selection"] if label_col in cols else []
    varying = [c for c in settings if table[c].map(_value).nunique(dropna=False) > 1]
    shared = [c for c in settings if c not in varying]
    name = lambda c: "λ" if c == "lambda" else c  # noqa: E731
    if varying:
        labels = [", ".join(f"{name(c)}={_value(v)}" for c, v in zip(varying, row))
                  for row in table[varying].itertuples(index=False)]
    else:
        labels = [str(v) for v in table[label_col]]
    caption = ", ".join(f"{name(c)}={_value(table[c].iloc[0])}" for c in shared)
    return [textwrap.fill(label, width, break_long_words=False) for label in labels], caption


def deltas(table: pd.DataFrame, label_col: str, title: str, path: Path, tag: str = "") -> Path | None:
    """Horizontal bars of Δ on test and seen languages per configuration, with their 95% intervals; each row
    named by the settings that differ between the rows, the shared ones in the title."""
    import textwrap

    if table.empty or "Δunseen" not in table or table["Δunseen"].notna().sum() == 0:
        return None
    plt = _plt()
    table = table[table["Δunseen"].notna()].iloc[::-1]
    labels, shared = row_labels(table, label_col)
    lines = sum(label.count("\n") + 1 for label in labels)
    fig, ax = plt.subplots(figsize=(9, max(3.5, 0.28 * lines + 0.3 * len(table) + 2)))
    y, height = np.arange(len(table)), 0.4
    for i, (role, name, color) in enumerate((("unseen", "test languages", "tab:blue"),
                                             ("seen", "seen languages", "tab:orange"))):
        if f"Δ{role}" not in table:
            continue
        mean = table[f"Δ{role}"].to_numpy(dtype=float)
        err = error_bars(mean, table[f"Δ{role}_lo"], table[f"Δ{role}_hi"])
        ax.barh(y + (0.5 - i) * height, mean, height, xerr=err, capsize=3, label=name, color=color)
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("Δ test score (paired by seed and language; 95% interval)")
    ax.set_title(title + (f"\n{textwrap.fill('every row: ' + shared, 90)}" if shared else ""), fontsize=11)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return _save(fig, path, tag)


PANELS = (("seen", "seen languages (trained on)"), ("unseen", "test languages (never trained on)"))


def _size_axis(ax, sizes) -> None:
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{v:g}" for v in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training examples per seen language (log scale)")


def _bands(table: pd.DataFrame, value: str, ylabel: str, title: str, path: Path, tag: str,
           zero: bool = False, settings: list | None = None) -> Path | None:
    """One panel per role (seen, test), one line per setting with its 95% band, on a log size axis; a
    setting keeps its colour from figure to figure (its place in ``settings``)."""
    if table.empty or table["examples"].nunique() < 2:
        return None
    roles = [(r, name) for r, name in PANELS if r in set(table["role"])]
    plt = _plt()
    fig, axes = plt.subplots(1, len(roles), figsize=(6.5 * len(roles), 4.8), squeeze=False)
    cmap = plt.get_cmap("tab10")
    order = list(dict.fromkeys([*(settings or []), *table["setting"]]))  # a setting's colour: its place here
    present = [x for x in order if x in set(table["setting"])]
    for ax, (role, name) in zip(axes[0], roles):
        for setting in present:
            i = order.index(setting)
            g = table[(table["setting"] == setting) & (table["role"] == role)].sort_values("examples")
            if g.empty:
                continue
            ax.plot(g["examples"], g[value], marker="o", color=cmap(i % 10), label=setting)
            ax.fill_between(g["examples"], g[f"{value}_lo"].astype(float), g[f"{value}_hi"].astype(float),
                            color=cmap(i % 10), alpha=0.18, linewidth=0)
        if zero:
            ax.axhline(0, color="black", linewidth=0.8)
        _size_axis(ax, sorted(table["examples"].unique()))
        ax.set_ylabel(ylabel)
        ax.set_title(name)
    axes[0][-1].legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if not tag:  # a tag (oracle selection) takes the figure's title line
        fig.suptitle(title)
    return _save(fig, path, tag)


def scaling(table: pd.DataFrame, path: Path, tag: str = "") -> Path | None:
    """Test-split score against training examples per language (log axis), seen and test languages apart,
    one line per setting with its 95% band (languages × seeds)."""
    return _bands(table, "score", "test-split score (95% band: languages × seeds)",
                  "Scaling: training examples per language → score", path, tag)


def delta_curves(table: pd.DataFrame, path: Path, tag: str = "", settings: list | None = None) -> Path | None:
    """Δ(n): each setting's paired Δ vs plain fine-tuning at each size, with its 95% band (colours as in
    :func:`scaling` when given its ``settings``)."""
    return _bands(table, "Δ", "Δ test score vs plain fine-tuning (95% band)",
                  "Δ(n): the URIEL loss's effect against training examples per language", path, tag, zero=True,
                  settings=settings)


def pareto(trials: pd.DataFrame, seen: str, unseen: str, front: pd.DataFrame, split: str,
           path: Path, tag: str = "") -> Path | None:
    """Seen vs unseen score of every trial, coloured by λ, with the Pareto front drawn."""
    t = trials[trials[seen].notna() & trials[unseen].notna()]
    if t.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    lam = t["cfg_lambda"] if "cfg_lambda" in t else pd.Series(np.zeros(len(t)), index=t.index)
    for value in sorted(lam.dropna().unique()):
        sel = t[lam == value]
        ax.scatter(sel[seen], sel[unseen], s=36, alpha=0.8, label=f"λ={value:g}")
    if not front.empty:
        ax.plot(front["seen"], front["unseen"], "k--", marker="D", markersize=6, label="Pareto front")
    ax.set_xlabel(f"{split} score, seen languages")
    ax.set_ylabel(f"{split} score, unseen (test) languages")
    ax.set_title("Seen vs unseen: trade-off across trials" + (" (test languages' dev: not for choosing)"
                                                               if split == "dev" else ""))
    ax.legend(fontsize=9)
    return _save(fig, path, tag)


def language_deltas(table: pd.DataFrame, path: Path, tag: str = "") -> Path | None:
    """Horizontal bars of each language's gain over the matched baseline (interval over its test examples),
    coloured by family."""
    if table.empty:
        return None
    plt = _plt()
    # the roles apart, top to bottom in the protocol's order (seen, validation, test); by gain within each
    order = {role: i for i, role in enumerate(ROLE_STYLE)}
    table = table.assign(_o=table["role"].map(order).fillna(len(order))).sort_values(
        ["_o", "delta"], ascending=[False, True]).drop(columns="_o")
    fig, ax = plt.subplots(figsize=(8, max(4, 0.35 * len(table) + 1.5)))
    families = list(dict.fromkeys(table["family"]))
    cmap = plt.get_cmap("tab10")
    colors = [cmap(families.index(f) % 10) for f in table["family"]]
    labels = [f"{c if n == c else f'{n} ({c})'}{'' if r == 'seen' else ' *' if r == 'unseen' else ' (val)'}"
              for n, c, r in zip(table["language"], table["lang"], table["role"])]
    err = error_bars(table["delta"], table["delta_lo"], table["delta_hi"])
    ax.barh(labels, table["delta"], xerr=err, color=colors, capsize=3)
    ax.axvline(0, color="black", linewidth=0.8)
    roles = list(table["role"])
    for i in range(1, len(roles)):  # a rule between the roles
        if roles[i] != roles[i - 1]:
            ax.axhline(i - 0.5, color="0.5", linewidth=0.8, linestyle="--")
    for f in families:
        ax.barh([labels[0]], [0], color=cmap(families.index(f) % 10), label=f)
    ax.legend(title="family", fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xlabel("test score: configuration − matched λ=0 baseline\n(95% interval over the language's test examples)")
    ax.set_ylabel("language, by role: seen, validation (val), test (*)")
    ax.set_title("Per-language Δ vs matched plain fine-tuning (test split)")
    return _save(fig, path, tag)


def distance(table: pd.DataFrame, fit: pd.DataFrame, path: Path, tag: str = "") -> Path | None:
    """Each held-out language's Δ (interval) against its URIEL distance to the nearest seen language, the
    fitted line over the test languages and its 95% prediction band, points coloured by family."""
    if table.empty or "uriel_nearest" not in table or table["uriel_nearest"].notna().sum() < 2:
        return None
    from alchemy_tune.analysis import typology as T
    from alchemy_tune.languages import langinfo

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    families = [langinfo.lookup(lang).family for lang in table["lang"]]
    names = list(dict.fromkeys(families))
    cmap = plt.get_cmap("tab10")
    for role, marker, filled in (("unseen", "o", True), ("val", "s", False)):
        rows = (table["role"] == role).to_numpy()
        if not rows.any():
            continue
        sub = table[rows]
        colors = [cmap(names.index(f) % 10) for f, r in zip(families, rows) if r]
        err = error_bars(sub["delta"], sub["delta_lo"], sub["delta_hi"])
        ax.errorbar(sub["uriel_nearest"], sub["delta"], yerr=err, fmt="none", ecolor="0.75", zorder=1)
        ax.scatter(sub["uriel_nearest"], sub["delta"], c=colors if filled else "none",
                   edgecolors=colors, marker=marker, zorder=2)
        ax.scatter([], [], c="0.3" if filled else "none", edgecolors="0.3", marker=marker,
                   label="test languages" if role == "unseen" else "validation languages (not fitted)")
    test = table[table["role"] == "unseen"]
    model = T.fit(test["uriel_nearest"].to_numpy(float), test["delta"].to_numpy(float))
    if not np.isnan(model["slope"]):
        xs = np.linspace(float(np.nanmin(table["uriel_nearest"])), float(np.nanmax(table["uriel_nearest"])), 50)
        band = np.array([T.predict(model, x) for x in xs])
        ax.plot(xs, band[:, 0], color="black", linewidth=1.2, label="least-squares line (test languages)")
        ax.fill_between(xs, band[:, 1], band[:, 2], color="0.85", zorder=0, label="95% prediction band")
    ax.axhline(0, color="black", linewidth=0.6, linestyle=":")
    for f in names:
        ax.scatter([], [], color=cmap(names.index(f) % 10), label=f)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xlabel("URIEL cosine distance to the nearest seen language\n(in the configuration's feature set)")
    ax.set_ylabel("Δ test score vs matched plain fine-tuning")
    ax.set_title("Δ per held-out language against its distance to the seen languages")
    return _save(fig, path, tag)


def importance(table: pd.DataFrame, evaluator: str, path: Path, tag: str = "") -> Path | None:
    if table.empty:
        return None
    plt = _plt()
    table = table.sort_values("importance")
    fig, ax = plt.subplots(figsize=(7, max(3, 0.4 * len(table) + 1.5)))
    ax.barh(table["parameter"], table["importance"], color="tab:green")
    ax.set_xlabel(f"importance ({evaluator})")
    ax.set_ylabel("parameter")
    ax.set_title("Parameter importance")
    return _save(fig, path, tag)

