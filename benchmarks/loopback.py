"""A multi-node Ray cluster on 127.0.0.1 for the benchmarks (``ray.cluster_utils.Cluster``), started again
when a node misses Ray's fixed 30 s registration window, which happens on a busy shared machine."""

from __future__ import annotations

import time

LOOPBACK = {"node_ip_address": "127.0.0.1"}


def start_cluster(head: dict, workers: list[dict], tries: int = 4):
    """(cluster, worker nodes): a head with ``head`` resources and one node per entry of ``workers``."""
    from ray.cluster_utils import Cluster

    for attempt in range(1, tries + 1):
        cluster = None
        try:
            cluster = Cluster(initialize_head=True, head_node_args={"include_dashboard": False, **head, **LOOPBACK})
            nodes = [cluster.add_node(**w, **LOOPBACK) for w in workers]
            return cluster, nodes
        except Exception as exc:  # Ray raises a bare Exception for a node that did not register in time
            if cluster is not None:
                cluster.shutdown()
            if attempt == tries:
                raise
            print(f"cluster start failed ({str(exc)[:80]}); retrying", flush=True)
            time.sleep(5)
    raise AssertionError("unreachable")
