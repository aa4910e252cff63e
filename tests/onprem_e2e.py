"""End to end: clusters/onprem.yaml brought up over SSH on 127.0.0.1, two searches, analysed, brought down.

Run by .ci/run (as root, on a fresh machine): ``python tests/onprem_e2e.py`` from the repository root.

The "node" is this machine seen through an sshd on 127.0.0.1 that runs in its own PID and mount namespace
(``unshare``), with its own home (the node's ~: uploaded repository, venv, ~/.bashrc, ~/alchemy-runs) and
its own /tmp (Ray's session files). Ray's `ray stop`, which `ray down` runs on every node, kills every
process named like a Ray process that it can see; inside the namespace it sees only this cluster's, so
other Ray clusters on this machine are never touched (a decoy named `raylet` outside proves it), and
ending the namespace's first process ends everything that was started in it. Steps, as the README says:

    ray up · ray dashboard (the SSH tunnel to the jobs API) · ray submit … search.py -- --address auto
    and ray job submit (the two at once: the node has 2 CPUs, each search runs one trial at a time)
    · analyze of both runs · ray down

Asserts: the `ray submit` run lands in $ALCHEMY_TUNE_STORAGE (the cluster file's shared storage); the Ray
job, submitted without a storage setting, lands in ~/alchemy-runs on the head and says so in its first
line, and nothing is written under Ray's runtime_resources; `analyze` reads both runs; after `ray down` no
Ray process is left on the node; at the end no process of this check is left at all.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from processes import alive, descendants, kill, proc_table

REPO = Path(__file__).resolve().parent.parent
CLUSTER = REPO / "clusters" / "onprem.yaml"
RAY = str(Path(sys.executable).with_name("ray"))
PRIVSEP = Path("/run/sshd")
TINY = dict(task="bible-genre", train_size=24, dev_size=12, test_size=12, seen=["eng", "fra", "deu"],
            unseen=["spa", "rus"], batch_size=8, epochs=1.0, evals_per_epoch=2, max_length=48, num_layers=None,
            device="cpu", threads=1)


def log(msg: str) -> None:
    print(f"[onprem-e2e {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], *, timeout: float, env: dict | None = None, check: bool = True,
        cwd: Path = REPO) -> subprocess.CompletedProcess:
    log("$ " + " ".join(cmd))
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    log(f"  exit {done.returncode} after {time.monotonic() - started:.0f}s")
    if os.environ.get("ONPREM_E2E_LOGS"):  # keep every command's output (the check's folder is removed)
        with open(os.environ["ONPREM_E2E_LOGS"], "a") as out:
            out.write(f"\n===== {' '.join(cmd)}\n{done.stdout}\n----- stderr\n{done.stderr}\n")
    if check and done.returncode != 0:
        raise SystemExit(f"FAILED ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


# ----------------------------------------------------------------------------- processes
def pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def mine(work: Path, namespace: str | None) -> dict[int, str]:
    """Processes of this check: inside the node's namespace, or naming the check's folder (ssh clients)."""
    return {pid: cmd for pid, (_, state, cmd) in proc_table().items()
            if state != "Z" and pid != os.getpid()
            and ((namespace and pid_namespace(pid) == namespace) or str(work) in cmd)}


# ----------------------------------------------------------------------------- set-up
def ensure_packages() -> None:
    """openssh-server and rsync from Debian's packages, installed without starting any service."""
    if shutil.which("sshd") or Path("/usr/sbin/sshd").exists():
        if shutil.which("rsync") and shutil.which("ssh-keygen"):
            return
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:  # keeps the package's postinst from starting a system sshd on port 22
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update", "-qq"], timeout=300, env=env)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "openssh-server", "openssh-client",
             "rsync"], timeout=600, env=env)
    finally:
        if own_policy:
            policy.unlink()


def write_sshd(work: Path, port: int) -> Path:
    keys = work / "keys"
    keys.mkdir(mode=0o700)
    for name in ("host", "id"):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"alchemy-e2e-{name}", "-f", str(keys / name)],
            timeout=60)
    (keys / "authorized_keys").write_text((keys / "id.pub").read_text())
    config = work / "sshd_config"
    config.write_text(f"""ListenAddress 127.0.0.1
Port {port}
HostKey {keys / 'host'}
AuthorizedKeysFile {keys / 'authorized_keys'}
PidFile {work / 'sshd.pid'}
AllowUsers {getpass.getuser()}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
MaxSessions 50
MaxStartups 50
Subsystem sftp internal-sftp
""")
    return config


def start_node(work: Path, config: Path, port: int) -> subprocess.Popen:
    """sshd as the first process of a new PID + mount namespace, with the node's own ~ and /tmp."""
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    node_home, node_tmp = work / "home", work / "node-tmp"
    node_home.mkdir()
    node_tmp.mkdir(mode=0o1777)
    mounts = []
    # the Python installation and this venv stay visible when they live under the real home
    for path in {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}:
        if home in path.parents:
            top = home / path.relative_to(home).parts[0]
            (node_home / top.name).mkdir(exist_ok=True)
            mounts.append(f"mount --rbind {top} {node_home / top.name}")
    script = " && ".join([*mounts, f"mount --rbind {node_home} {home}", f"mount --bind {node_tmp} /tmp",
                          f"exec /usr/sbin/sshd -D -e -f {config}"])
    PRIVSEP.mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    sshd_log = open(work / "sshd.log", "w")
    node = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private",
                             "--mount-proc", "sh", "-c", script], stdout=sshd_log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return node
        except OSError:
            if node.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"sshd did not start:\n{(work / 'sshd.log').read_text()[-3000:]}")
            time.sleep(0.2)


def loopback_config(work: Path, ssh_port: int) -> tuple[Path, dict]:
    """clusters/onprem.yaml with its CHANGE-ME values filled for this machine, head only, free ports."""
    config = yaml.safe_load(CLUSTER.read_text())
    name = f"alchemy-e2e-{os.getpid()}"
    config["cluster_name"] = name
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    config["auth"] = {"ssh_user": getpass.getuser(), "ssh_private_key": str(work / "keys" / "id")}
    ports = {flag: free_port() for flag in ("port", "dashboard-port", "ray-client-server-port",
                                            "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                            "runtime-env-agent-port", "metrics-export-port")}
    setup = config["setup_commands"]
    site = next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))
    venv_site = f"~/alchemy-venv/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
    # console scripts of this machine's ray and pip, run by the node venv's python
    shims = work / "shims.py"
    shims.write_text("import os, sys\n"
                     "for name, module in (('ray', 'ray.scripts.scripts'), ('pip', 'pip._internal.cli.main')):\n"
                     "    path = os.path.join(sys.prefix, 'bin', name)\n"
                     "    with open(path, 'w') as f:\n"
                     "        f.write(f'#!{sys.executable}\\nimport sys\\nfrom {module} import main\\nsys.exit(main())\\n')\n"
                     "    os.chmod(path, 0o755)\n")
    replaced = {
        # the node's environment: a venv whose dependencies are this machine's (the check stays offline)
        "test -e ~/alchemy-venv/bin/activate || python3 -m venv ~/alchemy-venv":
            f"{sys.executable} -m venv --without-pip ~/alchemy-venv && echo {site} > {venv_site}/this-machine.pth"
            f" && ~/alchemy-venv/bin/python {shims}",
        "echo 'export ALCHEMY_TUNE_STORAGE=/mnt/CHANGE-ME-nfs/alchemy-runs' >> ~/.alchemy-tune-env":
            f"echo 'export ALCHEMY_TUNE_STORAGE={work / 'shared'} ALCHEMY_TUNE_CACHE={cache_dir(work)}"
            " RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0' >> ~/.alchemy-tune-env",
        "pip install -e ~/alchemy-tune": "pip install -q --no-deps --no-build-isolation -e ~/alchemy-tune",
    }
    for old, new in replaced.items():
        assert old in setup, f"clusters/onprem.yaml no longer has `{old}`: update this check"
        setup[setup.index(old)] = new
    head = config["head_start_ray_commands"]
    start = head[-1]
    for flag, default in (("port", 6379), ("dashboard-port", 8265)):
        assert f"--{flag}={default}" in start, f"clusters/onprem.yaml: `--{flag}={default}` not in {start!r}"
        start = start.replace(f"--{flag}={default}", f"--{flag}={ports[flag]}")
    extra = [f"--{flag}={port}" for flag, port in ports.items() if flag not in ("port", "dashboard-port")]
    head[-1] = (f"{start} --node-ip-address=127.0.0.1 --num-cpus=2 --num-gpus=0 "
                f"--object-store-memory=200000000 --disable-usage-stats {' '.join(extra)}")
    path = work / "cluster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, {"name": name, **ports}


def cache_dir(work: Path) -> str:
    """The derived-artefact cache the trials use: the caller's, else a fresh one inside the check."""
    return os.environ.get("ALCHEMY_TUNE_CACHE") or str(work / "cache")


def tiny_space(work: Path) -> tuple[Path, subprocess.Popen]:
    """Two trials of a tiny encoder, one at a time (the node has 2 CPUs); the encoder is built in the
    background while the cluster comes up."""
    env = {**os.environ, "ALCHEMY_TUNE_CACHE": cache_dir(work)}
    code = f"from testing.tiny_encoder import make_tiny_encoder; make_tiny_encoder({str(work / 'tiny')!r})"
    builder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdin=subprocess.DEVNULL)
    space = work / "space.yaml"
    space.write_text(json.dumps({  # JSON is YAML
        "search": {"sampler": "random", "pruner": "none", "trials": 2, "max_concurrent": 1, "seed": 0,
                   "cpus_per_trial": 1, "baselines": "none"},
        **TINY, "model": str(work / "tiny"), "lr": {"type": "float", "low": 5e-4, "high": 2e-3, "log": True}}))
    return space, builder


# ----------------------------------------------------------------------------- the check
def check(work: Path) -> None:
    ssh_port = free_port()
    node = builder = tunnel = ns_init = None
    namespace = None
    cluster, info = None, {}
    # Launcher side: `ssh` means ssh to this node's port (Ray's cluster files have no SSH port setting).
    bin_dir = work / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f'#!/bin/sh\nexec {shutil.which("ssh") or "/usr/bin/ssh"} -p {ssh_port} "$@"\n')
    (bin_dir / "ssh").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0"}
    # A decoy outside the node, named like Ray's raylet: `ray stop` kills every such process it can see.
    decoy_bin = work / "raylet"
    shutil.copy(shutil.which("sleep"), decoy_bin)
    decoy = subprocess.Popen([str(decoy_bin), "900"], start_new_session=True)
    try:
        node = start_node(work, write_sshd(work, ssh_port), ssh_port)
        # the namespace's first process (sshd): when it ends, the kernel ends every process in the namespace
        ns_init = next(p for p in descendants(node.pid) if pid_namespace(p) != pid_namespace(os.getpid()))
        namespace = pid_namespace(ns_init)
        space, builder = tiny_space(work)
        if builder.wait(timeout=300) != 0:  # before `ray up`: Ray's start-up has a deadline, the CPUs are few
            raise SystemExit("building the tiny encoder failed")
        cluster, info = loopback_config(work, ssh_port)
        home = work / "home"

        up = [RAY, "up", "-y", "--no-config-cache", str(cluster)]
        first = run(up, timeout=600, env=env, check=False)
        if first.returncode != 0:
            # `ray start` gives the raylet a fixed 30 s to register; on a machine this loaded that can run
            # out. A second `ray up` redoes the set-up and restarts Ray on the node (its `ray stop` sees only
            # the node's namespace).
            reason = [ln for ln in (first.stdout + first.stderr).splitlines() if "rror" in ln or "xception" in ln]
            log(f"ray up failed ({' | '.join(reason[-3:])[-600:]}); once more")
            run(up, timeout=600, env=env)

        # `ray dashboard`: the SSH tunnel to the head's dashboard, which serves the jobs API
        local = free_port()
        tunnel = subprocess.Popen([RAY, "dashboard", "--port", str(local), "--remote-port",
                                   str(info["dashboard-port"]), str(cluster)], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        wait_http(f"http://127.0.0.1:{local}/api/version", timeout_s=60)
        # The two runs at once (each 1 trial at a time; the node has 2 CPUs):
        # `ray job submit` through the tunnel, without a storage setting ...
        with ThreadPoolExecutor(1) as pool:
            job_done = pool.submit(run, [RAY, "job", "submit", "--address", f"http://127.0.0.1:{local}",
                                         "--working-dir", ".", "--", "env", "-u", "ALCHEMY_TUNE_STORAGE",
                                         "python", "-m", "alchemy_tune.cli", "--address", "auto", "--space",
                                         str(space), "--name", "job"], timeout=600, env=env)
            # ... and `ray submit`: the script runs as a plain file on the head, joins with --address auto
            submitted = run([RAY, "submit", str(cluster), "alchemy_tune/search.py", "--", "--address", "auto",
                             "--space", str(space), "--name", "submitted"], timeout=600, env=env)
            job = job_done.result()
        expected = work / "shared" / "submitted"
        assert f"storage: {work / 'shared'} ($ALCHEMY_TUNE_STORAGE)" in submitted.stdout, submitted.stdout[-3000:]
        assert_run(expected, trials=2)
        assert "succeeded" in job.stdout, job.stdout[-4000:]
        job_lines = [ln for ln in job.stdout.splitlines() if ln.startswith("storage: ")]
        node_home = pwd.getpwuid(os.getuid()).pw_dir  # the node's ~ has this name inside its namespace
        assert job_lines and job_lines[0].startswith(f"storage: {node_home}/alchemy-runs (default for a Ray job"), \
            job.stdout[-3000:]
        assert_run(home / "alchemy-runs" / "job", trials=2)
        copies = [p for p in (work / "node-tmp").rglob("runtime_resources") if p.is_dir()]
        assert copies, "no runtime_resources folder: the job did not run from a working-dir copy"
        # a run written into the copy (the repository's own shipped study tables are not one)
        packages = [pkg for c in copies for pkg in c.glob("working_dir_files/*") if pkg.is_dir()]
        leaked = [str(p) for pkg in packages for p in pkg.rglob("*")
                  if p.name in ("alchemy-runs", "alchemy_run.json") and not (REPO / p.relative_to(pkg)).exists()]
        assert packages and not leaked, f"written into Ray's working-dir copy: {leaked[:5]}"

        # 3. analyze reads both runs, from this machine
        analysed = run([sys.executable, "-m", "alchemy_tune.cli", "analyze", str(expected),
                        str(home / "alchemy-runs" / "job"), "--format", "json"], timeout=300, env=env)
        assert analysed.returncode == 0

        # 4. ray down: Ray stops on the node, and only there
        stop(tunnel)
        tunnel = None
        run([RAY, "down", "-y", str(cluster)], timeout=300, env=env)
        left = {pid: cmd for pid, cmd in mine(work, namespace).items()
                if pid_namespace(pid) == namespace and "sshd" not in cmd and "sleep 86400" not in cmd}
        assert not left, f"Ray processes left on the node after `ray down`: {left}"
        assert alive(decoy.pid), "`ray down` killed a process outside its cluster"
        log("ray up / ray submit / ray job submit / analyze / ray down: all as documented")
    finally:
        if builder is not None:
            stop(builder)
        stop(tunnel)
        stop(decoy)
        if node is not None:
            if ns_init:
                kill([ns_init])
            stop(node)
        deadline = time.monotonic() + 20  # ssh control masters exit once their connection is gone
        while mine(work, namespace) and time.monotonic() < deadline:
            time.sleep(0.5)
        log(f"stopped the node; waited {20 - (deadline - time.monotonic()):.0f}s for its last processes")
        stray = mine(work, namespace)
        kill(stray)
        cleanup_launcher_files(info.get("name"))
        if stray:
            raise SystemExit(f"processes were left running and had to be killed: {stray}")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within {timeout_s:.0f}s")
        time.sleep(1)


def assert_run(run_dir: Path, trials: int) -> None:
    from alchemy_tune.results.schema import read_trials  # the tables are folders of parts (schema 2)

    assert (run_dir / "alchemy_run.json").is_file(), f"no run at {run_dir}"
    table = read_trials(str(run_dir)).to_pydict()
    assert len(table["trial_id"]) == trials and set(table["status"]) == {"completed"}, table["status"]


def cleanup_launcher_files(name: str | None) -> None:
    """What Ray's launcher leaves for this cluster: the local provider's state and lock files, and the
    folder of its SSH control sockets (/tmp/ray_ssh_<user hash>/<cluster hash>, as command_runner.py names it)."""
    if not name:
        return
    for suffix in ("state", "lock"):
        Path(f"/tmp/ray/cluster-{name}.{suffix}").unlink(missing_ok=True)
    digest = lambda text: hashlib.sha256(text.encode()).hexdigest()[:10]  # noqa: E731
    sockets = Path(f"/tmp/ray_ssh_{digest(getpass.getuser())}")
    for folder in (sockets / digest(name), sockets):
        try:
            folder.rmdir()  # only when empty: another user of the launcher may still have sockets there
        except OSError:
            pass


def main() -> int:
    if os.geteuid() != 0:
        print("onprem_e2e: needs root (sshd in its own namespace, apt-get for openssh-server)", file=sys.stderr)
        return 2
    started = time.monotonic()
    ensure_packages()
    had_privsep = PRIVSEP.exists()
    work = Path(tempfile.mkdtemp(prefix="alchemy-e2e-", dir="/var/tmp"))
    try:
        check(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not had_privsep:
            PRIVSEP.rmdir()
    log(f"passed in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
