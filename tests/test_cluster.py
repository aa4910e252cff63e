"""Where a search runs: the results root (incl. inside a Ray job), the node wait, and joining a real
`ray start` head on 127.0.0.1 with ``--address auto`` and ``HOST:PORT``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from processes import stop_tree

from alchemy_tune.cli import main
from alchemy_tune.tuning.cluster import DEFAULT_STORAGE, node_wait_s, storage_root

RAY = str(Path(sys.executable).with_name("ray"))


def first_line(capsys, argv) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out.splitlines()[0]


# ----------------------------------------------------------------------------- results root
def test_storage_flag_then_environment_then_default(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ALCHEMY_TUNE_STORAGE", raising=False)
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    monkeypatch.chdir(tmp_path)
    dry = ["--trials", "1", "--dry-run"]
    assert first_line(capsys, dry) == "storage: alchemy-runs (default: ./alchemy-runs)"
    monkeypatch.setenv("ALCHEMY_TUNE_STORAGE", "/nfs/runs")
    assert first_line(capsys, dry) == "storage: /nfs/runs ($ALCHEMY_TUNE_STORAGE)"
    assert first_line(capsys, [*dry, "--storage", "s3://b/p"]) == "storage: s3://b/p (--storage)"
    monkeypatch.setenv("ALCHEMY_TUNE_STORAGE", "")  # empty = unset
    assert storage_root(None) == (DEFAULT_STORAGE, "default: ./alchemy-runs")


def test_a_ray_job_never_defaults_into_its_working_dir_copy(tmp_path, capsys, monkeypatch):
    """`ray job submit --working-dir .` runs the driver in Ray's temporary copy, which Ray deletes."""
    monkeypatch.delenv("ALCHEMY_TUNE_STORAGE", raising=False)
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    copy = tmp_path / "session" / "runtime_resources" / "working_dir_files" / "_ray_pkg_0123abcd"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    line = first_line(capsys, ["--trials", "1", "--dry-run"])
    assert line.startswith(f"storage: {tmp_path / 'home' / 'alchemy-runs'} (default for a Ray job")
    # the job supervisor's marker alone (a job without --working-dir) gives the same default
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", '{"runtime_env": {}}')
    assert storage_root(None)[0] == str(tmp_path / "home" / "alchemy-runs")
    # an explicit choice still wins inside a job, unless it is relative (it would land in the copy)
    monkeypatch.setenv("ALCHEMY_TUNE_STORAGE", "/nfs/runs")
    assert storage_root(None) == ("/nfs/runs", "$ALCHEMY_TUNE_STORAGE")
    assert storage_root("~/runs") == ("~/runs", "--storage")
    assert main(["--trials", "1", "--dry-run", "--storage", "runs"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--storage runs: a relative path in a Ray job" in err


def test_node_wait_is_an_option_with_an_environment_default(capsys, monkeypatch):
    monkeypatch.delenv("ALCHEMY_TUNE_NODE_WAIT_S", raising=False)
    assert node_wait_s() == 600
    monkeypatch.setenv("ALCHEMY_TUNE_NODE_WAIT_S", "42")
    assert node_wait_s() == 42 and node_wait_s(0) == 0
    for argv, named in ((["--node-wait", "-1"], "--node-wait"), ([], "$ALCHEMY_TUNE_NODE_WAIT_S")):
        monkeypatch.setenv("ALCHEMY_TUNE_NODE_WAIT_S", "ten")
        assert main(["--trials", "1", "--dry-run", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"error: {named}: expected seconds" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- a real head on 127.0.0.1
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_head(temp: str, port: int) -> subprocess.Popen | None:
    """`ray start --head --block`; None if it gave up (it allows the raylet a fixed 30 s to register)."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    flags = ["--ray-client-server-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
             "--runtime-env-agent-port", "--metrics-export-port"]
    cmd = [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
           "--num-gpus=0", "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats",
           *[f"{flag}={free_port()}" for flag in flags]]
    log = Path(temp) / "start.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_tree(proc.pid)
            proc.wait(timeout=10)
            return None
        time.sleep(0.5)
    return proc


@pytest.fixture(scope="module")
def loopback_head():
    """`ray start --head` on 127.0.0.1 (as a node of a single-machine cluster would be), 1 CPU, no GPU."""
    import shutil

    temp = tempfile.mkdtemp(prefix="at-head-")  # short: Ray's socket paths live under it
    port = free_port()
    proc = start_head(temp, port) or start_head(temp, port)  # twice: a loaded machine can miss the 30 s
    try:
        assert proc is not None, (Path(temp) / "start.log").read_text()[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        if proc is not None:
            stop_tree(proc.pid)
            proc.wait(timeout=10)
        shutil.rmtree(temp, ignore_errors=True)


def driver(code: str, **env: str) -> subprocess.CompletedProcess:
    """A fresh driver process without the loopback switch: what `ray submit`'s login shell would run."""
    clean = {k: v for k, v in os.environ.items() if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, "RAY_AUTH_MODE": "disabled", **env},
                          capture_output=True, text=True, timeout=180)


def test_the_loopback_workaround_still_reaches_rays_switch():
    """keep_loopback is the package's one use of ray._private: when a Ray release moves what it relies on, this
    fails (no skip), instead of drivers silently losing a cluster bound to 127.0.0.1."""
    done = driver("import os\n"
                  "from alchemy_tune.tuning.cluster import keep_loopback\n"
                  "import ray.util\n"
                  "switch = lambda: os.environ.get('RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER')\n"
                  "print('elsewhere', keep_loopback('10.0.0.5:6379'), switch())\n"
                  "print('auto', keep_loopback('auto'), switch())\n"
                  "print('node', ray.util.get_node_ip_address())", RAY_ADDRESS="127.0.0.1:6379")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["elsewhere False None", "auto True 0", "node 127.0.0.1"], done.stderr[-3000:]


@pytest.mark.slow
def test_address_auto_stays_on_loopback(loopback_head):
    # RAY_ADDRESS is how `auto` finds this head (and what a Ray job's driver gets); without the fix Ray
    # rewrites 127.0.0.1 to the machine's outward address, where no raylet of this cluster is.
    done = driver("from alchemy_tune.tuning.cluster import init_ray\n"
                  "init_ray('auto')\n"
                  "import ray\n"
                  "print('nodes', sorted(n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']))\n"
                  "print('cpus', ray.cluster_resources().get('CPU'))", RAY_ADDRESS=loopback_head)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "nodes ['127.0.0.1']" in done.stdout and "cpus 1.0" in done.stdout


@pytest.mark.slow
def test_gpus_asked_of_a_cluster_without_them_wait_node_wait_then_say_so(loopback_head, tmp_path):
    done = driver("import sys\nfrom alchemy_tune.cli import main\n"
                  f"sys.exit(main(['--trials', '1', '--address', {loopback_head!r}, '--gpus-per-trial', '1', "
                  f"'--node-wait', '1', '--storage', {str(tmp_path)!r}, '--name', 'g']))")
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stdout.splitlines()[0] == f"storage: {tmp_path} (--storage)"
    assert "waiting up to 1s" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == (
        "alchemy-tune search: error: --gpus-per-trial 1: the largest live node of the cluster has 0 GPUs after waiting 1s for the "
        "autoscaler; use --gpus-per-trial 0 (CPU) or a cluster with GPU nodes")
    assert not (tmp_path / "g").exists()
