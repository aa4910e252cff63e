"""Running the ``alchemy-tune`` command in tests.

:func:`run_cli` runs it in this process (``cli.main(argv)``): no interpreter start and no re-import of torch,
Ray or pandas per call, so a test of a bad flag costs milliseconds. :func:`run_cli_process` runs it as a user
does, in a new Python process, for the few checks that need one (exit codes of the real entry point,
what a fresh interpreter imports). :func:`one_line_error` is the check every bad-input test makes.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: str | Path | None = None) -> CliResult:
    """``alchemy-tune ARGS`` in this process; argparse's own exits (``--help``, a bad flag) are caught."""
    from alchemy_tune.cli import main

    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as PYTHONWARNINGS=ignore does for the subprocess
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        os.chdir(before)
    return CliResult(int(code or 0), out.getvalue(), err.getvalue())


def run_cli_process(*args: str, cwd: str | Path | None = None, timeout: float = 300,
                    env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m alchemy_tune.cli ARGS`` in a new process, as the installed command runs."""
    return subprocess.run([sys.executable, "-m", "alchemy_tune.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})


def one_line_error(result, *needles: str) -> str:
    """Exit code 2, one line on stderr naming every needle, no traceback; returns that line."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
