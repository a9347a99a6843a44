"""`lanenet perturb`: kill, pause, restart or disconnect a node, alone or as a timed script
under load, then check the invariants (``node/tools/invariants.py``).

    lanenet perturb --target local|compose --action kill|pause|restart|disconnect --node NAME
                    [--for SECONDS] [--check]
    lanenet perturb --target local|compose --script FILE [--json]

A script (TOML, JSON or YAML) lists steps with times from the start of the run::

    load_tps = 20          # the recording load (0: none)
    liveness_bound = 30    # seconds the net may take to commit again after the last step
    settle = 30            # seconds to wait for accepted transactions after the load stops
    warmup = 2             # seconds of load before the first step
    [[step]]
    at = 0                 # seconds after the warm-up
    action = "kill"
    node = "node1"
    for = 3                # kill, pause and disconnect end after this (default 10 s)

The run: start the recording load (``perturb_load.py``), play the steps (a step's end is
played as its own event, so steps may overlap), check liveness while the load still runs,
stop the load, wait for accepted transactions to settle, check agreement and exactly-once,
print the report; exit 1 on a violation, 2 on bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import threading
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.tools import testnet
from node.tools.invariants import (
    RPC_ERRORS,
    Accepted,
    Crash,
    RpcNode,
    Verdict,
    Violation,
    check_all,
    check_liveness,
    render_verdict,
    verdict_to_dict,
)
from node.tools.perturb_load import RecordingLoad, derive_keys, fund
from node.tools.perturb_targets import (
    ACTIONS,
    CRASHING,
    ComposeTarget,
    LocalTarget,
    NodeInfo,
    Target,
    compose_project_name,
)
from node.types.errors import ConfigError

DEFAULT_FOR_S = 10.0
LOAD_KEYS_PER_LANE = 2  # accounts of the recording load owned by each node
_POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class Step:
    at: float
    action: str
    node: str
    duration: float | None  # None: the action has no end (restart), or a kill that stays


@dataclass(frozen=True, slots=True)
class Script:
    steps: tuple[Step, ...]
    load_tps: float = 20.0
    liveness_bound: float = 30.0
    settle: float = 30.0
    warmup: float = 2.0


@dataclass
class Played:
    """What happened to one step: wall times of its start and end."""

    step: Step
    applied_at: float | None = None
    reverted_at: float | None = None
    error: str | None = None


@dataclass
class RunResult:
    played: list[Played] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)


# ------------------------------------------------------------------------------ scripts


def load_script(path: Path) -> Script:
    """Parse and check a TOML, JSON or YAML script; ``ConfigError`` says what is wrong."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            yaml = importlib.import_module("yaml")
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{path}: a script is .toml, .json or .yaml")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except ImportError:
        raise ConfigError(f"{path}: YAML needs PyYAML (pip install pyyaml)") from None
    except Exception as exc:  # noqa: BLE001 (yaml's own error class is not importable typed)
        raise ConfigError(f"{path}: {exc}") from None
    return parse_script(data, str(path))


def parse_script(data: Any, where: str = "script") -> Script:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table with a list of steps")
    raw_steps = data.get("step", data.get("steps"))
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ConfigError(f"{where}: no steps (a list named 'step' or 'steps')")
    known = {"step", "steps", "load_tps", "liveness_bound", "settle", "warmup"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
    steps = tuple(_parse_step(s, f"{where}: step {i + 1}") for i, s in enumerate(raw_steps))
    return Script(
        steps=tuple(sorted(steps, key=lambda s: s.at)),
        load_tps=_number(data, "load_tps", 20.0, where),
        liveness_bound=_number(data, "liveness_bound", 30.0, where),
        settle=_number(data, "settle", 30.0, where),
        warmup=_number(data, "warmup", 2.0, where),
    )


def _parse_step(raw: Any, where: str) -> Step:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table with at, action, node")
    unknown = sorted(set(raw) - {"at", "action", "node", "for"})
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (known: at, action, node, for)")
    action, node = raw.get("action"), raw.get("node")
    if action not in ACTIONS:
        raise ConfigError(f"{where}: action {action!r} is not one of {', '.join(ACTIONS)}")
    if not isinstance(node, str) or not node:
        raise ConfigError(f"{where}: node must be a node name such as node1")
    at = _number(raw, "at", None, where)
    duration = None if action == "restart" else _number(raw, "for", DEFAULT_FOR_S, where)
    if action == "restart" and "for" in raw:
        raise ConfigError(f"{where}: restart has no duration (drop 'for')")
    return Step(at, action, node, duration)


def _number(data: dict[str, Any], key: str, default: float | None, where: str) -> float:
    value = data.get(key, default)
    if value is None:
        raise ConfigError(f"{where}: '{key}' is required")
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: '{key}' must be a number of seconds >= 0, not {value!r}")
    return float(value)


def check_overlaps(script: Script) -> None:
    """On the local target a kill ends with `testnet up`, which starts every stopped node:
    two nodes' kill or restart windows must not overlap there."""
    windows = [
        (s.at, s.at + (s.duration or 0.0), s)
        for s in script.steps
        if s.action in CRASHING
    ]
    for i, (start, end, step) in enumerate(windows):
        for start2, end2, other in windows[i + 1 :]:
            if other.node != step.node and start2 <= end and start <= end2:
                raise ConfigError(
                    f"steps '{step.action} {step.node}' at {step.at:g} s and '{other.action} "
                    f"{other.node}' at {other.at:g} s overlap: on the local target a kill ends "
                    "with `testnet up`, which would start both; space them apart"
                )


# ------------------------------------------------------------------------------ playing


def play(target: Target, script: Script, stop: threading.Event | None = None) -> RunResult:
    """Apply every step at its time and undo it when its duration is up."""
    stop = stop or threading.Event()
    result = RunResult([Played(s) for s in script.steps])
    events: list[tuple[float, int, Played]] = []
    for played in result.played:
        events.append((played.step.at, 1, played))
        if played.step.duration is not None:
            events.append((played.step.at + played.step.duration, 0, played))
    events.sort(key=lambda e: (e[0], e[1]))
    start = time.monotonic()
    for at, is_apply, played in events:
        if stop.wait(max(0.0, start + at - time.monotonic())):
            break
        step = played.step
        if is_apply:
            _say(f"{at:6.1f} s  {step.action} {step.node}")
            try:
                target.apply(step.action, step.node)
            except (ConfigError, OSError) as exc:
                played.error = str(exc)
                _say(f"         {step.action} {step.node} failed: {exc}")
                continue
            played.applied_at = time.time()
            if step.action in CRASHING:
                result.crashes.append(Crash(step.node, played.applied_at))
        elif played.applied_at is not None:
            _say(f"{at:6.1f} s  end of {step.action} {step.node}")
            target.revert(step.action, step.node)
            played.reverted_at = time.time()
    return result


def _say(message: str) -> None:
    print(f"perturb: {message}", file=sys.stderr, flush=True)


def settle(nodes: Sequence[RpcNode], accepted: Sequence[Accepted], timeout: float) -> bool:
    """Until some node has a receipt for every accepted transaction, or ``timeout``."""
    waiting = sorted({a.tx_hash for a in accepted})
    deadline = time.monotonic() + timeout
    while waiting:
        for node in nodes:
            try:
                receipts = node.receipts(waiting)
            except RPC_ERRORS:
                continue
            waiting = [h for h, r in zip(waiting, receipts, strict=True) if r is None]
            break
        if not waiting:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
    return True


# ------------------------------------------------------------------------------ the command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lanenet perturb",
        description="perturb a testnet's nodes and check that it keeps its invariants",
    )
    p.add_argument("--target", choices=("local", "compose"), required=True)
    p.add_argument("--dir", type=Path, default=Path("testnet"), help="local testnet directory")
    p.add_argument("--project", default=None, help="compose project (default: as compose)")
    p.add_argument("--rpc-port", type=int, default=8545, help="nodes' JSON-RPC container port")
    p.add_argument("--action", choices=ACTIONS)
    p.add_argument("--node", help="node name (local: node0..; compose: the service name)")
    p.add_argument(
        "--for",
        dest="duration",
        type=float,
        default=None,
        help=f"seconds until the action is undone (pause/disconnect default {DEFAULT_FOR_S:g}; "
        "kill: restart after this, stay down without it)",
    )
    p.add_argument("--check", action="store_true", help="check the invariants afterwards")
    p.add_argument("--script", type=Path, help="a timed list of steps to run under load")
    p.add_argument("--load-tps", type=float, help="recording load rate (overrides the script)")
    p.add_argument(
        "--liveness-bound", type=float, help="seconds to commit again (overrides the script)"
    )
    p.add_argument("--keys", type=Path, help="accounts.json with funded keys for the load")
    p.add_argument("--accepted", type=Path, help="also check these accepted tx hashes")
    p.add_argument(
        "--strict",
        action="store_true",
        help="an accepted tx whose nonce went to another of its sender is a violation too",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        target = _target(args)
        try:
            return _script(args, target) if args.script else _single(args, target)
        finally:
            target.close()
    except ConfigError as exc:
        print(f"lanenet perturb: {exc}", file=sys.stderr)
        return 2


def _target(args: argparse.Namespace) -> LocalTarget | ComposeTarget:
    if args.script is None and (args.action is None or args.node is None):
        raise ConfigError("give --action and --node, or --script FILE")
    if args.script is not None and args.action is not None:
        raise ConfigError("--script and --action exclude each other")
    for flag in ("duration", "load_tps", "liveness_bound"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            name = "--for" if flag == "duration" else "--" + flag.replace("_", "-")
            raise ConfigError(f"{name} must be >= 0")
    if args.target == "local":
        return LocalTarget(args.dir)
    return ComposeTarget(compose_project_name(args.project, Path.cwd()), args.rpc_port)


def _single(args: argparse.Namespace, target: Target) -> int:
    """One action; with --check, a one-step script (under the recording load, since an idle
    testnet commits no blocks and liveness could not be seen)."""
    duration = args.duration
    if duration is None and args.action in ("pause", "disconnect"):
        duration = DEFAULT_FOR_S
    if args.action == "restart":
        duration = None
    step = Step(0.0, args.action, args.node, duration)
    if args.check:
        return _run_script(args, target, Script((step,)))
    result = play(target, Script((step,), load_tps=0.0, warmup=0.0))
    failed = [p.error for p in result.played if p.error]
    if failed:
        raise ConfigError(failed[0])
    print(f"{args.action} {args.node}: done" + (f" ({duration:g} s)" if duration else ""))
    return 0


def _script(args: argparse.Namespace, target: Target) -> int:
    return _run_script(args, target, load_script(args.script))


def _run_script(args: argparse.Namespace, target: Target, script: Script) -> int:
    if args.load_tps is not None:
        script = dataclasses.replace(script, load_tps=args.load_tps)
    if args.liveness_bound is not None:
        script = dataclasses.replace(script, liveness_bound=args.liveness_bound)
    if args.target == "local":
        check_overlaps(script)
    infos = target.nodes()
    if not infos:
        raise ConfigError("found no nodes (compose: no container publishes --rpc-port)")
    names = {n.name for n in infos}
    for step in script.steps:
        if step.node not in names:
            raise ConfigError(f"no node {step.node!r}; the nodes are {sorted(names)}")
    nodes = [RpcNode(n.name, n.jsonrpc) for n in infos]
    load = _start_load(args, infos, nodes, script)
    try:
        if load is not None:
            time.sleep(script.warmup)  # load before the first step: a pace, not a wait
        result = play(target, script)
        _say("steps done; checking liveness")
        live, recovery = check_liveness(nodes, script.liveness_bound)
    finally:
        if load is not None:
            load.stop()
    accepted = (load.accepted if load is not None else []) + _accepted_file(args.accepted)
    _say(f"{len(accepted)} accepted transactions; settling")
    settle(nodes, accepted, script.settle)
    verdict: Verdict = check_all(nodes, accepted, result.crashes, None, args.strict)
    verdict.violations[:0] = live
    verdict.recovery_s = recovery
    extra: dict[str, object] = {
        "steps": [_played_dict(p) for p in result.played],
        "load": None if load is None else vars(load.stats),
    }
    for played in result.played:
        if played.error:
            what = f"{played.step.action} {played.step.node}: {played.error}"
            verdict.violations.append(Violation("perturbation", what))
    return _print(args, verdict, extra)


def _start_load(
    args: argparse.Namespace, infos: list[NodeInfo], nodes: list[RpcNode], script: Script
) -> RecordingLoad | None:
    if script.load_tps <= 0:
        return None
    keys = _keys(args)
    if not keys:
        _say("no funded keys (--keys, or a local testnet's accounts.json): running without load")
        return None
    status = nodes[0].status()
    if status is None:
        raise ConfigError(f"{nodes[0].name} ({nodes[0].url}) does not answer lanenet_status")
    chain_id = int(status["chain_id"])
    load_keys = derive_keys(len(infos), LOAD_KEYS_PER_LANE)
    _say(f"funding {len(load_keys)} load accounts")
    fund(infos, keys[-1], load_keys, chain_id)
    load = RecordingLoad(infos, load_keys, script.load_tps, chain_id)
    load.start()
    return load


def _keys(args: argparse.Namespace) -> list[bytes]:
    if args.keys is not None:
        try:
            accounts = json.loads(args.keys.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{args.keys}: {exc}") from None
    elif args.target == "local":
        accounts = testnet.load_accounts(args.dir)
    else:
        return []
    try:
        return [bytes.fromhex(str(a["private_key"]).removeprefix("0x")) for a in accounts]
    except (KeyError, TypeError, ValueError):
        raise ConfigError("keys: expected a list of {address, private_key}") from None


def _accepted_file(path: Path | None) -> list[Accepted]:
    """Hashes one per line, or a JSON list of hashes."""
    if path is None:
        return []
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    try:
        items = json.loads(text) if text.lstrip().startswith("[") else text.split()
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    hashes = [str(h) for h in items]
    bad = [h for h in hashes if len(h) != 66 or not h.startswith("0x")]
    if bad:
        raise ConfigError(f"{path}: not a transaction hash: {bad[0]!r}")
    return [Accepted(h) for h in hashes]


def _played_dict(p: Played) -> dict[str, object]:
    return {
        "at": p.step.at,
        "action": p.step.action,
        "node": p.step.node,
        "for": p.step.duration,
        "applied_at": p.applied_at,
        "reverted_at": p.reverted_at,
        "error": p.error,
    }


def _print(args: argparse.Namespace, verdict: Verdict, extra: dict[str, object]) -> int:
    if args.json:
        print(json.dumps({**extra, **verdict_to_dict(verdict)}))
    else:
        load = extra.get("load")
        if isinstance(load, dict):
            print(
                f"load: {load['sent']} sent, {load['accepted']} accepted, {load['refused']} "
                f"refused, {load['failed']} unanswered (node down: fate unknown, not counted)"
            )
            for reason, count in sorted(load["refusals"].items()):
                print(f"  refused: {count} x {reason}")
        print(render_verdict(verdict))
    return 0 if verdict.ok else 1

