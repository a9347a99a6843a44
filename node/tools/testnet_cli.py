"""`lanenet testnet ...` and `lanenet node run` / `lanenet status` argument handling."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
from pathlib import Path

from node.runtime.config import (
    DEFAULT_HOT_BLOCKS,
    DEFAULT_SEGMENT_BLOCKS,
    DEFAULT_SNAPSHOT_INTERVAL,
)
from node.tools import testnet
from node.types.errors import ConfigError

DEFAULT_DIR = Path("testnet")


def _print_accounts(directory: Path) -> None:
    print("\nDev accounts (funded at genesis; private keys are in accounts.json):")
    for i, account in enumerate(testnet.load_accounts(directory)):
        print(f"  ({i}) {account['address']}  key {account['private_key']}")


def _print_status(rows: list[dict[str, object]], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"nodes": rows}))
        return
    print(f"{'node':8} {'pid':>7} {'committed':>9} {'executed':>9}  jsonrpc / grpc / metrics")
    for r in rows:
        pid = r["pid"] if r["pid"] is not None else "-"
        committed = r["committed_height"] if r["committed_height"] is not None else "-"
        executed = r["executed_height"] if r["executed_height"] is not None else "-"
        print(
            f"{r['name']!s:8} {pid!s:>7} {committed!s:>9} {executed!s:>9}  "
            f"{r['jsonrpc']} {r['grpc']} {r['metrics']}"
        )


def _wait_ready(directory: Path, timeout: float) -> list[dict[str, object]]:
    """Status rows once every node answers, a node's process exited, or ``timeout``."""
    deadline = time.monotonic() + timeout
    rows = testnet.status(directory)
    while time.monotonic() < deadline:
        rows = testnet.status(directory)
        if all(r["committed_height"] is not None for r in rows):
            return rows
        if any(r["pid"] is None for r in rows):
            return rows
        time.sleep(0.5)
    return rows


def _last_error(node_dir: Path) -> str:
    """The last line of a node's log that says why it stopped (or its last line)."""
    try:
        lines = (node_dir / "node.log").read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    for line in reversed(lines):
        if line.startswith("lanenet:") or "Error" in line:
            return line.strip()
    return lines[-1].strip() if lines else "(empty log)"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lanenet testnet", description="a local testnet")
    sub = parser.add_subparsers(dest="action", required=True)
    gen = sub.add_parser("generate", help="write keys, genesis and node configs")
    gen.add_argument("--validators", type=int, default=4)
    gen.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    gen.add_argument("--chain-id", type=int, default=7357)
    gen.add_argument("--host", default="127.0.0.1", help="every node's host (local layout)")
    gen.add_argument("--no-p2p", action="store_true", help="disable libp2p gossip")
    gen.add_argument("--force", action="store_true", help="overwrite an existing testnet")
    _add_node_options(gen)
    box = gen.add_argument_group(
        "containers", "one node per network namespace (docker compose, Kubernetes)"
    )
    box.add_argument(
        "--host-template",
        metavar="TEMPLATE",
        help="peer host of node i, e.g. 'node{i}' (a DNS name: compose service, k8s pod)",
    )
    box.add_argument(
        "--listen-host", metavar="ADDR", help="address every node binds, e.g. 0.0.0.0"
    )
    box.add_argument(
        "--same-ports",
        action="store_true",
        help="every node uses the base ports (needs --host-template)",
    )
    box.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data"),
        help="node data directory; absolute for a volume (default: nodeN/data)",
    )
    box.add_argument(
        "--archive-dir",
        type=Path,
        default=Path("archive"),
        help="archive tier directory; absolute for a volume (default: nodeN/archive)",
    )
    box.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing (exit 0) when DIR already holds a testnet (init containers)",
    )
    up = sub.add_parser("up", help="start the nodes (generating a 4-node testnet if needed)")
    up.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    up.add_argument("--validators", type=int, default=4)
    up.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the nodes")
    up.add_argument("--json", action="store_true")
    _add_node_options(up)
    down = sub.add_parser("down", help="stop the nodes")
    down.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    st = sub.add_parser("status", help="heights and endpoints of every node")
    st.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    st.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"lanenet testnet: {exc}", file=sys.stderr)
        return 2


def _add_node_options(parser: argparse.ArgumentParser) -> None:
    nodes = parser.add_argument_group("full nodes and storage")
    nodes.add_argument(
        "--full-nodes",
        type=int,
        default=0,
        metavar="N",
        help="non-validating full nodes beside the validators (fullJ/; up adds missing ones)",
    )
    nodes.add_argument("--hot-blocks", type=int, default=DEFAULT_HOT_BLOCKS, metavar="N")
    nodes.add_argument("--segment-blocks", type=int, default=DEFAULT_SEGMENT_BLOCKS, metavar="N")
    nodes.add_argument(
        "--snapshot-interval", type=int, default=DEFAULT_SNAPSHOT_INTERVAL, metavar="N"
    )


def _storage(args: argparse.Namespace) -> testnet.Storage:
    for name in ("hot_blocks", "segment_blocks", "snapshot_interval"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if args.full_nodes < 0:
        raise ConfigError("--full-nodes must be 0 or more")
    return testnet.Storage(
        hot_blocks=args.hot_blocks,
        segment_blocks=args.segment_blocks,
        snapshot_interval=args.snapshot_interval,
    )


def _run(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if args.action == "generate":
        if (directory / "genesis.json").exists() and not args.force:
            if args.if_missing:
                print(f"{directory} already holds a testnet; keeping it")
                return 0
            raise ConfigError(f"{directory} already holds a testnet (use --force to replace it)")
        layout = testnet.Layout(
            host=args.host,
            listen_host=args.listen_host,
            host_template=args.host_template,
            same_ports=args.same_ports,
            data_dir=args.data_dir,
            archive_dir=args.archive_dir,
        )
        testnet.generate(
            directory,
            args.validators,
            args.chain_id,
            p2p=not args.no_p2p,
            layout=layout,
            full_nodes=args.full_nodes,
            storage=_storage(args),
        )
        full = f" and {args.full_nodes} full nodes" if args.full_nodes else ""
        print(f"testnet of {args.validators} validators{full} written to {directory}")
        return 0
    if args.action == "up":
        storage = _storage(args)
        if not (directory / "genesis.json").exists():
            testnet.generate(directory, args.validators, storage=storage)
            print(f"generated a {args.validators}-validator testnet in {directory}")
        while len(testnet.full_node_dirs(directory)) < args.full_nodes:
            print(f"added full node {testnet.add_full_node(directory).name}")
        pids = testnet.up(directory)
        print(f"started {len(pids)} nodes (logs: {directory}/node*/node.log)")
        rows = _wait_ready(directory, args.wait)
        _print_status(rows, args.json)
        exited = [r for r in rows if r["pid"] is None]
        for row in exited:
            why = _last_error(directory / str(row["name"]))
            print(f"{row['name']} exited: {why}", file=sys.stderr)
        if exited:
            return 1
        if not args.json:
            _print_accounts(directory)
        if any(r["committed_height"] is None for r in rows):
            print("some nodes did not answer yet; see their node.log", file=sys.stderr)
            return 1
        return 0
    if args.action == "down":
        stopped = testnet.down(directory)
        print(f"stopped {stopped} nodes")
        return 0
    _print_status(testnet.status(directory), args.json)
    return 0


def node_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lanenet node", description="run a validator")
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run a validator (or a full node) until SIGTERM")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument("--log-format", choices=("console", "json"), default=None)
    run.add_argument(
        "--state-sync",
        action="store_true",
        help="a node with an empty database starts from a snapshot of its sync_peers",
    )
    args = parser.parse_args(argv)
    from node.runtime.process import run_node

    return run_node(args.config, args.log_format, state_sync=args.state_sync)


def status_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lanenet status", description="ask a node")
    parser.add_argument("url", help="JSON-RPC URL, e.g. http://127.0.0.1:8545")
    args = parser.parse_args(argv)
    try:
        info = testnet.rpc_call(args.url, "lanenet_status", [])
    except (OSError, urllib.error.URLError, RuntimeError, ValueError) as exc:
        print(f"lanenet status: {args.url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2))
    return 0
