"""Process bookkeeping for tests that start Ray or sshd outside pytest's own process: find exactly the
processes a test started (by parentage) and stop only those — never by name, as `ray stop` does."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def proc_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state letter, command line) of every process now."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry)] = (int(fields[1]), fields[0], cmdline.strip())
    return table


def descendants(pid: int) -> list[int]:
    table = proc_table()
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _, _) in table.items():
            if ppid == parent:
                out.append(child)
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    """Running (a zombie only waits for its parent to read its exit status)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill(pids, sig=signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_tree(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM ``pid`` and everything below it, then SIGKILL what is still running after ``grace_s``."""
    pids = [pid, *descendants(pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        kill(filter(alive, pids), sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(map(alive, pids)):
            time.sleep(0.2)
