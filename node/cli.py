"""The ``lanenet`` command: one subcommand per tool.

``sim`` hands its arguments, untouched, to the simulator's own parser
(``node.sim.runner.main``), which is imported only when the subcommand runs so the rest of
the command works without it. ``testnet``, ``node``, ``spam``, ``perturb`` and ``deploy``
join here the same way.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from node import __version__

EntryPoint = Callable[[list[str]], int]
Command = Callable[[argparse.Namespace, list[str]], int]


def _cmd_version(args: argparse.Namespace, rest: list[str]) -> int:
    print(f"lanenet {__version__}")
    return 0


def _delegate(module: str, args: argparse.Namespace, rest: list[str]) -> int:
    """Run ``module.main(rest)``: the delegate parses the subcommand's arguments itself."""
    try:
        entry: EntryPoint = importlib.import_module(module).main
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise
        print(
            f"lanenet {args.command}: not available in this build ({module} is missing)",
            file=sys.stderr,
        )
        return 2
    return entry(rest)


def _cmd_sim(args: argparse.Namespace, rest: list[str]) -> int:
    return _delegate("node.sim.runner", args, rest)


def _cmd_testnet(args: argparse.Namespace, rest: list[str]) -> int:
    from node.tools.testnet_cli import main as testnet_main

    return testnet_main(rest)


def _cmd_node(args: argparse.Namespace, rest: list[str]) -> int:
    from node.tools.testnet_cli import node_main

    return node_main(rest)


def _cmd_status(args: argparse.Namespace, rest: list[str]) -> int:
    from node.tools.testnet_cli import status_main

    return status_main(rest)


def _cmd_spam(args: argparse.Namespace, rest: list[str]) -> int:
    return _delegate("node.tools.spammer", args, rest)


def _cmd_archive(args: argparse.Namespace, rest: list[str]) -> int:
    return _delegate("node.storage.archive_cli", args, rest)


def _cmd_perturb(args: argparse.Namespace, rest: list[str]) -> int:
    return _delegate("node.tools.perturb", args, rest)


def _cmd_deploy(args: argparse.Namespace, rest: list[str]) -> int:
    return _delegate("node.tools.deploy", args, rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanenet",
        description="lanenet: an Autobahn validator node and the tools to run it.",
    )
    parser.add_argument("--version", action="version", version=f"lanenet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    version = commands.add_parser("version", help="print the version and exit")
    version.set_defaults(func=_cmd_version, delegates=False)

    # add_help=False: `lanenet sim --help` reaches the simulator's own parser.
    sim = commands.add_parser(
        "sim",
        help="run the deterministic multi-validator simulator (see `lanenet sim --help`)",
        add_help=False,
    )
    sim.set_defaults(func=_cmd_sim, delegates=True)
    for name, func, text in (
        ("testnet", _cmd_testnet, "generate, start, stop and inspect a local testnet"),
        ("node", _cmd_node, "run a validator (`lanenet node run --config FILE`)"),
        ("status", _cmd_status, "show a node's status (`lanenet status URL`)"),
        ("spam", _cmd_spam, "load a testnet with signed transfers"),
        ("archive", _cmd_archive, "check or describe an archive (`lanenet archive verify DIR`)"),
        ("perturb", _cmd_perturb, "kill/pause/restart/disconnect nodes, check invariants"),
        ("deploy", _cmd_deploy, "run validators on several Docker hosts (`--hosts FILE`)"),
    ):
        command = commands.add_parser(name, help=text, add_help=False)
        command.set_defaults(func=func, delegates=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if rest and not args.delegates:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    func: Command = args.func
    return func(args, rest)


if __name__ == "__main__":
    sys.exit(main())
