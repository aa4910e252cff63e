"""The ``alchemy-tune`` command: a table from command name to library functions, nothing more.

``alchemy-tune --trials N ...`` (no command word) is the search, the main job.
Each entry names a module with ``add_arguments(parser)`` and ``run(args) -> int``; modules are
imported only when their command runs, so ``train --help`` does not start Ray.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from alchemy_tune import __version__
from alchemy_tune.core.errors import UsageError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "search": ("alchemy_tune.cli.search", "run a hyperparameter search with Ray Tune + Optuna (the default)"),
    "resume": ("alchemy_tune.cli.resume", "continue a search whose driver died, or extend one: alchemy-tune resume RUN_DIR [--trials N]"),
    "train": ("alchemy_tune.cli.train", "run one LinguAlchemy trial without Ray and print per-language scores"),
    "plan": ("alchemy_tune.cli.plan", "dry run: print trials, languages and URIEL coverage without training"),
    "analyze": ("alchemy_tune.cli.analyze", "leaderboard, ablations, plots and a Markdown report for run(s)"),
    "compact": ("alchemy_tune.cli.compact", "merge a run's result parts into one file per table: compact RUN_DIR"),
    "confirm": ("alchemy_tune.cli.confirm", "re-run a search's best configurations and baselines on fresh seeds"),
}
DEFAULT_COMMAND = "search"


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (no usage block) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default unless its help already says it in words, or there is none to show."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default:" in text or action.default in (None, argparse.SUPPRESS) or action.default is False:
            return text
        return super()._get_help_string(action)


def build_parser(command: str) -> argparse.ArgumentParser:
    module_name, help_text = COMMANDS[command]
    parser = _Parser(
        prog="alchemy-tune" if command == DEFAULT_COMMAND else f"alchemy-tune {command}",
        description=help_text,
        formatter_class=_Defaults,
    )
    importlib.import_module(module_name).add_arguments(parser)
    return parser


def _top_help() -> str:
    lines = [
        "usage: alchemy-tune [--trials N] [search options]   (the search; see alchemy-tune search --help)",
        "       alchemy-tune COMMAND [options]",
        "",
        "commands:",
    ]
    lines += [f"  {name:<8} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Every command has --help."]
    return "\n".join(lines)


MIN_ADDRESS_SPACE = 4 << 30
"""The address space (``ulimit -v``) below which no command starts: torch alone maps about 2.5 GB of
libraries, and a thread pool that cannot get its stacks hangs (OpenBLAS) or dies with a long traceback."""


def address_space_problem() -> str | None:
    """A one-line refusal when the process's address-space limit is too small to import the stack."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft >= MIN_ADDRESS_SPACE:
        return None
    return (f"the address-space limit (ulimit -v) is {soft >> 20:,} MB; alchemy-tune needs at least "
            f"{MIN_ADDRESS_SPACE >> 20:,} MB of address space (torch maps about 2.5 GB of libraries, and "
            "thread pools reserve their stacks there): raise it, e.g. `ulimit -v unlimited`")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(_top_help())
        return 0
    if argv and argv[0] == "--version":
        print(f"alchemy-tune {__version__}")
        return 0
    command = argv.pop(0) if argv and argv[0] in COMMANDS else DEFAULT_COMMAND
    if argv[:1] and not argv[0].startswith("-") and command == DEFAULT_COMMAND:
        print(f"alchemy-tune: error: unknown command {argv[0]!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    too_little = address_space_problem()
    if too_little:
        print(f"alchemy-tune {command}: error: {too_little}", file=sys.stderr)
        return 2
    try:
        parser = build_parser(command)
        args = parser.parse_args(argv)  # argparse itself exits 2 with a one-line message
        module = importlib.import_module(COMMANDS[command][0])
        return int(module.run(args) or 0)
    except MemoryError:
        print(f"alchemy-tune {command}: error: out of memory (the machine, or a limit such as `ulimit -v`); "
              "free memory or raise the limit, or give the command less to do", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"alchemy-tune {command}: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError, OverflowError) as exc:
        # The classes bad user input raises below the checks: a path that is a file, missing or not
        # writable (OSError), a truncated or corrupt Parquet/JSON/journal file (pyarrow.ArrowInvalid,
        # json.JSONDecodeError: both ValueErrors), a number too large to convert (OverflowError).
        print(f"alchemy-tune {command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("alchemy-tune: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    """What failed, naming the file where the exception knows it, on one line."""
    if isinstance(exc, OSError) and exc.filename:
        what = f"{exc.strerror or type(exc).__name__}: {exc.filename}"
        if exc.filename2:
            what += f" -> {exc.filename2}"
    else:
        what = f"{type(exc).__name__}: {exc}"
    return " ".join(what.split())
