"""The Ray flags every command that runs trials shares: which cluster, and the embedded Ray's size."""

from __future__ import annotations


def add_ray_arguments(parser) -> None:
    """``--address`` and ``--num-cpus`` on ``parser`` (a parser or an argument group)."""
    parser.add_argument("--address", help="join this Ray cluster ('auto' on a cluster node); default: embedded Ray")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the embedded Ray (default: all)")


def add_max_failures(parser) -> None:
    """``--max-failures`` on ``parser`` (a parser or an argument group)."""
    parser.add_argument("--max-failures", type=int, default=2,
                        help="retries of a crashed trial or one whose node died (each from its last checkpoint)")
