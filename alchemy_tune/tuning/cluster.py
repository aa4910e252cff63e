"""Where a search runs: starting or joining Ray, network probes, resource checks, the results root.

Kept apart from :mod:`alchemy_tune.tuning.search` (the Tuner) because these are about the machines, not the
search: an embedded Ray on 127.0.0.1, a cluster joined by ``--address``, a cluster started by Ray's
launcher (``clusters/*.yaml``), or a run launched as a Ray job (``ray job submit``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from alchemy_tune.core.errors import UsageError

logger = logging.getLogger(__name__)

DEFAULT_STORAGE = "alchemy-runs"
STORAGE_ENV = "ALCHEMY_TUNE_STORAGE"
NODE_WAIT_ENV = "ALCHEMY_TUNE_NODE_WAIT_S"
DEFAULT_NODE_WAIT_S = 600.0
# Set by Ray's job supervisor for the driver of every `ray job submit` job (Ray's runtime_env constants).
_RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


# ----------------------------------------------------------------------------- results root
def storage_root(given: str | None) -> tuple[str, str]:
    """(results root, why it was chosen): ``--storage``, else $ALCHEMY_TUNE_STORAGE, else a default.

    The default is ./alchemy-runs, except in a Ray job: its working directory is Ray's temporary copy of
    ``--working-dir`` (``.../runtime_resources/working_dir_files/...``), which Ray deletes, so a job's runs
    go to ~/alchemy-runs on the node that runs the driver.
    """
    for value, why in ((given, "--storage"), (os.environ.get(STORAGE_ENV), f"${STORAGE_ENV}")):
        if value:
            if in_ray_job() and "://" not in value and not os.path.isabs(os.path.expanduser(value)):
                raise UsageError(f"{why} {value}: a relative path in a Ray job lands in Ray's temporary copy "
                                 "of its working directory, which Ray deletes; give an absolute path, ~/..., "
                                 "or a URI such as s3://bucket/prefix")
            return value, why
    if in_ray_job():
        return os.path.join(os.path.expanduser("~"), DEFAULT_STORAGE), \
            "default for a Ray job: its working directory is a temporary copy that Ray deletes"
    return DEFAULT_STORAGE, "default: ./alchemy-runs"


def in_ray_job() -> bool:
    """True in the driver of a `ray job submit` job, or anywhere under a Ray-managed working-dir copy."""
    return bool(os.environ.get(_RAY_JOB_ENV)) or "runtime_resources" in os.getcwd().split(os.sep)


def node_wait_s(given: float | None = None) -> float:
    """Seconds to wait for the autoscaler to bring a node that fits one trial (``--node-wait``)."""
    if given is not None:
        value, what = given, "--node-wait"
    else:
        text = os.environ.get(NODE_WAIT_ENV) or str(DEFAULT_NODE_WAIT_S)
        try:
            value, what = float(text), f"${NODE_WAIT_ENV}"
        except ValueError:
            raise UsageError(f"${NODE_WAIT_ENV}: expected seconds (a number >= 0), got {text!r}") from None
    if not value >= 0:
        raise UsageError(f"{what}: expected seconds (a number >= 0), got {value:g}")
    return value


# ----------------------------------------------------------------------------- Ray
def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join ``address`` or start an embedded Ray bound to loopback; UsageError if unreachable."""
    import ray

    # Tune's automatic TensorBoardX logger duplicates each trial's own TensorBoard files and was most of the
    # driver's time per report (benchmarks/bench_search.py --simulate); make_tuner passes Tune's CSV and
    # JSON loggers itself.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    if ray.is_initialized():
        return
    named_by_env = not address and bool(os.environ.get("RAY_ADDRESS"))
    if named_by_env:  # as Ray's own tools do (a Ray job's driver gets it): join that cluster, and say so
        address = os.environ["RAY_ADDRESS"]
        print(f"note: joining the Ray cluster at $RAY_ADDRESS={address} (unset RAY_ADDRESS to start Ray on this "
              "machine)", file=sys.stderr, flush=True)
    try:
        _init(address, num_cpus)
    except UsageError as exc:
        if named_by_env:
            raise UsageError(str(exc).replace(f"--address {address}", f"$RAY_ADDRESS={address}", 1)) from None
        raise


def _init(address: str | None, num_cpus: int | None) -> None:
    import ray

    # Workers' own log lines (one per checkpoint) would drown the progress lines; errors still reach the
    # results and the progress line, and full traces stay in each trial's error.txt.
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's boxed banner and tables; ours is one line
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    if address and address != "auto" and not address.startswith("ray://"):
        check_reachable(address)
    if address and not address.startswith("ray://"):
        keep_loopback(address)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # "local": always a fresh embedded Ray, never silently joining one found on this machine
            ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1", **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--address {address}: cannot connect to a Ray cluster ({first[:200]})") from None


def is_loopback(address: str) -> bool:
    return address.rpartition(":")[0] in _LOOPBACK


def keep_loopback(address: str) -> bool:
    """Keep a driver that joins a cluster bound to 127.0.0.1 on loopback; True when the switch was set.

    Ray rewrites a loopback address to the machine's outward IP before connecting, where a cluster bound to
    127.0.0.1 (``ray start --head --node-ip-address 127.0.0.1``) does not listen. Ray's own switch for
    single-machine clusters (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) keeps it on loopback. ``auto`` is judged
    by the address Ray would resolve it to ($RAY_ADDRESS, else the last `ray start` on this machine),
    read before Ray rewrites it.

    The only use of ``ray._private`` in the package: Ray has no public API for the switch (read once, at
    import, into ``ray_constants``) nor for what ``auto`` stands for. Guarded: if a Ray release moves either,
    this warns and returns False (Ray then connects as it would without us), and
    ``tests/test_cluster.py::test_the_loopback_workaround_still_reaches_rays_switch`` fails.
    """
    if address != "auto" and not is_loopback(address):
        return False
    try:
        from ray._private import ray_constants
        from ray._private.services import get_ray_address_from_environment

        switch = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
        ray_constants.ENABLE_RAY_CLUSTER  # noqa: B018  (present, or this Ray changed the switch)
    except (ImportError, AttributeError) as exc:
        logger.warning("cannot keep a loopback Ray address on loopback: this Ray (%s) moved what the "
                       "workaround uses (%s)", _ray_version(), exc)
        return False
    if address == "auto":
        try:
            address = get_ray_address_from_environment("auto", None) or ""
        except ConnectionError:  # no cluster found: ray.init reports it in its own words
            return False
        except Exception as exc:  # e.g. a changed signature: connect as Ray would without us
            logger.warning("cannot resolve --address auto on this Ray (%s): %s", _ray_version(), exc)
            return False
        if not is_loopback(address):
            return False
    os.environ[switch] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    return True


def _ray_version() -> str:
    import ray

    return ray.__version__


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Ray retries an unreachable GCS for minutes; a plain TCP connect answers in seconds."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address}: expected HOST:PORT (e.g. 10.0.0.5:6379), 'auto' or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UsageError(f"--address {address}: cannot connect to a Ray cluster ({exc.strerror or exc})") from None


def check_resources(cpus: float, gpus: float, *, local: bool, wait_s: float | None = None) -> None:
    """Fail fast when no node could ever run one trial (instead of a trial pending forever).

    On a cluster the autoscaler may still be starting the right nodes: ask it for one trial's bundle and
    wait up to ``wait_s`` seconds (default: :func:`node_wait_s`) before giving up.
    """
    import ray

    def fits() -> bool:
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        return any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes)

    if fits():
        return
    waited = ""
    if not local:
        from ray.autoscaler.sdk import request_resources

        wait_s = node_wait_s() if wait_s is None else wait_s
        print(f"waiting up to {wait_s:.0f}s for a node with {cpus:g} CPU + {gpus:g} GPU (autoscaler; "
              "--node-wait sets how long)", flush=True)
        request_resources(bundles=[{"CPU": cpus, **({"GPU": gpus} if gpus else {})}])
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not fits():
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        request_resources(bundles=[])
        if fits():
            return
        waited = f" after waiting {wait_s:.0f}s for the autoscaler"
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    where = "this machine has" if local else "the largest live node of the cluster has"
    most_gpus = max((r.get("GPU", 0) for r in nodes), default=0)
    if gpus > most_gpus:
        raise UsageError(f"--gpus-per-trial {gpus:g}: {where} {most_gpus:g} GPU{_s(most_gpus)}{waited}; "
                         "use --gpus-per-trial 0 (CPU) or a cluster with GPU nodes")
    most = max((r.get("CPU", 0) for r in nodes), default=0)
    raise UsageError(f"--cpus-per-trial {cpus:g}: {where} {most:g} CPU{_s(most)}{waited}; ask for at most that")


def _s(n: float) -> str:
    return "" if n == 1 else "s"
