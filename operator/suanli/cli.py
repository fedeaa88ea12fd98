"""The ``suanli`` command line: one subcommand per job (``suanli crd``, later ``run``, ``agent``...).

Each subcommand is a ``(register, run)`` pair: ``register`` adds its arguments to a sub-parser and
``run`` does the work and returns the exit status. Adding a subcommand is one more entry in
``COMMANDS``; heavy imports stay inside ``run`` so ``suanli --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    register: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --- suanli crd -----------------------------------------------------------------------------------


def _crd_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind",
        action="append",
        metavar="KIND",
        help="only this kind (name, plural or short name; repeatable); default: every kind",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="write one <group>_<plural>.yaml per kind into DIR instead of printing",
    )
    where.add_argument(
        "--check",
        type=Path,
        metavar="DIR",
        help="exit 1 if the CRD files in DIR differ from the models (for CI)",
    )


def _crd_run(args: argparse.Namespace) -> int:
    from .api import crd, kinds

    try:
        selected = [kinds.kind_info(k) for k in args.kind] if args.kind else list(kinds.KINDS)
    except KeyError as exc:
        print(f"suanli crd: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.check is not None:
        stale = crd.stale_crds(args.check, selected)
        for name in stale:
            print(
                f"suanli crd: {args.check / name} is out of date; regenerate with `make crds`",
                file=sys.stderr,
            )
        return 1 if stale else 0
    if args.output_dir is not None:
        for path in crd.write_crds(args.output_dir, selected):
            print(f"wrote {path}", file=sys.stderr)
        return 0
    sys.stdout.write(crd.render_yaml(crd.build_crd(info) for info in selected))
    return 0


# --- suanli run -----------------------------------------------------------------------------------


def _run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--leader-election", "--peering", dest="leader_election", metavar="NAME", default=None,
                        help="replicas sharing NAME elect one active engine through the Lease NAME-engine in "
                             "$POD_NAMESPACE (default: none, for a single replica)")
    parser.add_argument("--liveness", metavar="URL", default="http://0.0.0.0:8080/healthz",
                        help="serve kopf's liveness probe here (default: %(default)s)")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve Prometheus /metrics on this port; 0 disables (default: 9090)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def _run_run(args: argparse.Namespace) -> int:
    import logging
    import os

    import kopf

    from .controller import handlers  # noqa: F401 - importing registers the handlers with kopf
    from .controller.gc_tuning import tune_garbage_collector

    if args.metrics_port is not None:
        os.environ["SUANLI_METRICS_PORT"] = str(args.metrics_port)
    if args.leader_election:
        os.environ["SUANLI_PEERING"] = args.leader_election

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tune_garbage_collector()  # before the engine's first list, which decodes every node and pod of the cluster
    # Standalone: kopf runs the process (start-up, clean-up, liveness probe); which replica acts is decided
    # by the engine's own Lease (controller/leader.py), checked before every write, not by kopf peering.
    kopf.run(clusterwide=True, standalone=True, liveness_endpoint=args.liveness or None)
    return 0


# --- suanli agent ---------------------------------------------------------------------------------


def _agent_args(parser: argparse.ArgumentParser) -> None:
    from .agent.options import add_arguments

    add_arguments(parser)


def _agent_run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from .agent import Agent
    from .agent.golden import GoldenError, GoldenTable
    from .agent.options import settings_from
    from .agent.publisher import Publisher, connect

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from(args)
        golden = GoldenTable.load(Path(settings.golden_file) if settings.golden_file else None)
    except (ValueError, GoldenError) as exc:
        print(f"suanli agent: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with connect() as api:
        publisher = Publisher(api, settings.node_name, settings.request_timeout_seconds)
        return Agent(settings, publisher, golden=golden).run(stop)


COMMANDS: tuple[Command, ...] = (
    Command(
        "crd",
        "print (or write, or check) the CustomResourceDefinitions generated from the API models",
        _crd_args,
        _crd_run,
    ),
    Command("run", "run the operator and gang scheduler against the current kubeconfig", _run_args, _run_run),
    Command(
        "agent",
        "probe this node's accelerators and publish labels, taint and its AcceleratorNode (DaemonSet)",
        _agent_args,
        _agent_run,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="suanli",
        description="Suanli: one schedulable pool of Ascend NPUs, Hygon DCUs and NVIDIA GPUs for training.",
    )
    parser.add_argument("--version", action="version", version=f"suanli {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command_parser = sub.add_parser(command.name, help=command.help, description=command.help)
        command.register(command_parser)
        command_parser.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``suanli`` script and ``python -m suanli``; returns the exit status."""
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args._run
    return run(args)
