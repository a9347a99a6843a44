"""`lanenet spam`: load a testnet with signed transfers at a fixed rate and report.

    lanenet spam --tps 2000 --duration 60 [--dir ./testnet | --rpc URL,... [--grpc T,...]]
                 [--accounts K] [--mode grpc|jsonrpc] [--route auto|lane|any]
                 [--batch-ms 20] [--settle 10] [--seed HEX] [--watch 0] [--json]

Funds K accounts from the dev accounts (``accounts.json`` of the testnet, or ``--keys``),
then sends pre-signed EIP-1559 transfers open-loop at the target rate, in batches every
``--batch-ms``, to the nodes in turn. Every transfer's value is its send time in
milliseconds. A transaction counts as committed once it appears in an executed block on the
watched node; latency runs from its send time to that moment. The report (text, or one
JSON line with ``--json``) gives sent = accepted + rejected, accepted = committed +
pending, throughput, and latency p50/p90/p99. See ``node/tools/spam/`` for the parts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import grpc
from rich.console import Console

from node.tools import testnet
from node.tools.spam.endpoints import (
    Endpoint,
    RpcFailure,
    endpoints_from_dir,
    endpoints_from_lists,
)
from node.tools.spam.progress import LiveProgress, NoProgress, Progress
from node.tools.spam.report import Report, render_text
from node.tools.spam.runner import SpamConfig, run_spam
from node.types.errors import ConfigError

DEFAULT_DIR = Path("testnet")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lanenet spam", description="load a testnet with signed transfers and report"
    )
    p.add_argument("--tps", type=int, required=True, help="target transactions per second")
    p.add_argument("--duration", type=float, required=True, help="seconds of sending")
    p.add_argument(
        "--accounts",
        type=int,
        default=None,
        help="pool size (default: max(200, tps*3/16), a multiple of the node count)",
    )
    p.add_argument("--mode", choices=("grpc", "jsonrpc"), default="grpc")
    p.add_argument(
        "--route",
        choices=("auto", "lane", "any"),
        default="auto",
        help="lane: each batch holds only accounts of the receiving node's lane; "
        "any: nodes forward; auto: lane when node indices are known (--dir)",
    )
    p.add_argument("--dir", type=Path, default=None, help="testnet directory (default ./testnet)")
    p.add_argument("--rpc", default="", help="JSON-RPC URLs, comma-separated, instead of --dir")
    p.add_argument("--grpc", default="", help="gRPC client targets host:port, comma-separated")
    p.add_argument(
        "--keys",
        type=Path,
        default=None,
        help="accounts.json with funded private keys (default: the testnet's)",
    )
    p.add_argument("--batch-ms", type=int, default=20, help="submit batching interval")
    p.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="seconds to wait for pending transactions after sending",
    )
    p.add_argument("--seed", default=None, help="hex seed of the pool keys (default: random)")
    p.add_argument("--watch", type=int, default=0, help="node whose blocks are watched")
    p.add_argument(
        "--sign-ahead",
        type=float,
        default=60.0,
        help="seconds of schedule signed before and kept ahead of sending",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")
    return p


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def resolve(args: argparse.Namespace) -> tuple[list[Endpoint], list[bytes]]:
    """The nodes and the funded dev keys the arguments name."""
    rpc, grpc_targets = _split(args.rpc), _split(args.grpc)
    directory: Path | None = args.dir
    if rpc or grpc_targets:
        endpoints = endpoints_from_lists(rpc, grpc_targets)
    else:
        directory = directory or DEFAULT_DIR
        endpoints = endpoints_from_dir(directory)
    if args.keys is not None:
        accounts = json.loads(args.keys.read_text())
    elif directory is not None:
        accounts = testnet.load_accounts(directory)
    else:
        raise ConfigError("--keys is needed with --rpc/--grpc (the funded dev accounts)")
    keys = [bytes.fromhex(str(a["private_key"]).removeprefix("0x")) for a in accounts]
    return endpoints, keys


def config_of(args: argparse.Namespace) -> SpamConfig:
    return SpamConfig(
        tps=args.tps,
        duration_s=args.duration,
        accounts=args.accounts,
        mode=args.mode,
        route=args.route,
        batch_ms=args.batch_ms,
        settle_s=args.settle,
        seed=None if args.seed is None else bytes.fromhex(args.seed.removeprefix("0x")),
        watch=args.watch,
        sign_ahead_s=args.sign_ahead,
    )


def _say(message: str) -> None:
    print(f"spam: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> Report:
    endpoints, keys = resolve(args)
    cfg = config_of(args)
    live = not args.json and sys.stdout.isatty()

    def progress() -> Progress:
        return LiveProgress(Console()) if live else NoProgress()

    return asyncio.run(run_spam(cfg, endpoints, keys, _say, progress))


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        report = run(args)
    except (ConfigError, RpcFailure, aiohttp.ClientError, OSError, ValueError) as exc:
        print(f"lanenet spam: {exc}", file=sys.stderr)
        return 2
    except grpc.aio.AioRpcError as exc:
        print(f"lanenet spam: gRPC {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else render_text(report), flush=True)
    return 0 if report.check_counts() else 1
