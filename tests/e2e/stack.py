"""The running docker compose testnet, as the e2e tests see it from the host.

``.ci/e2e`` starts the stack and points ``LANENET_E2E_COMPOSE`` at its compose files
(colon-separated, like ``COMPOSE_FILE``); the project name comes from
``COMPOSE_PROJECT_NAME`` and the published ports from the same variables docker-compose.yml
reads (``NODE<i>_RPC_PORT``, ``NODE<i>_METRICS_PORT``, ``PROMETHEUS_PORT``), so the tests
reach exactly what compose published on 127.0.0.1.

Waiting is polling against a deadline (the nodes are other processes); nothing asserts after a
fixed sleep.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VALIDATORS = 4
NODES = tuple(f"node{i}" for i in range(VALIDATORS))
BATCH = 100  # blocks per JSON-RPC batch


class StackError(Exception):
    """The stack did not do what a test needed (a command failed or a wait ran out)."""


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def compose_command() -> list[str]:
    """docker-compose v1, else the v2 plugin (`docker compose`)."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


@dataclass(frozen=True)
class Stack:
    compose_files: str
    host: str = "127.0.0.1"

    # ------------------------------------------------------------------ docker compose

    def env(self) -> dict[str, str]:
        """The environment for docker compose (and tools that call it) to find this stack."""
        return {**os.environ, "COMPOSE_FILE": self.compose_files}

    def compose(self, *args: str, timeout: float = 300.0, check: bool = True) -> str:
        proc = subprocess.run(
            [*compose_command(), *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise StackError(
                f"docker compose {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}"
            )
        return proc.stdout

    def container(self, service: str) -> str:
        cid = self.compose("ps", "-q", service).strip()
        if not cid:
            raise StackError(f"service {service} has no container")
        return cid

    def health(self, service: str) -> str:
        """Docker's health status of a service's container (healthy, unhealthy, starting)."""
        fmt = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"
        out = subprocess.run(
            ["docker", "inspect", "--format", fmt, self.container(service)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
        if not out:
            return "gone"
        return out[1] if out[0] == "running" and len(out) > 1 else out[0]

    def spam(self, *args: str, timeout: float = 300.0) -> dict[str, Any]:
        """Run the spammer service once (its own container) and return its JSON report.

        ``--no-deps``: else `run` would start a killed node again, or refuse while a paused
        one is unhealthy, and undo the perturbation under test."""
        out = self.compose(
            "run", "--rm", "--no-deps", "-T", "spammer", "spam", "--json", *args, timeout=timeout
        )
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            raise StackError(f"the spammer printed no JSON report: {out[-2000:]}")
        report: dict[str, Any] = json.loads(lines[-1])
        return report

    def spam_started(self, *args: str, timeout: float = 120.0) -> subprocess.Popen[str]:
        """Start the spammer container and return once it has funded its accounts and is
        about to send (its "sending starts" line); ``report_of`` collects the report."""
        proc = subprocess.Popen(
            [*compose_command(), "run", "--rm", "--no-deps", "-T", "spammer", "spam", "--json",
             *args],
            cwd=ROOT, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stderr is not None
        deadline = time.monotonic() + timeout
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "sending starts" in line:
                return proc
            if time.monotonic() > deadline:
                break
        proc.kill()
        raise StackError(f"the spammer did not start sending: {''.join(seen)[-2000:]}")

    @staticmethod
    def report_of(proc: subprocess.Popen[str], timeout: float = 300.0) -> dict[str, Any]:
        out, err = proc.communicate(timeout=timeout)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if proc.returncode not in (0, 1) or not lines:
            raise StackError(f"the spammer exited {proc.returncode}: {err[-2000:]}")
        report: dict[str, Any] = json.loads(lines[-1])
        return report

    # ------------------------------------------------------------------ nodes

    def rpc_url(self, i: int) -> str:
        return f"http://{self.host}:{_port(f'NODE{i}_RPC_PORT', 8545 + i)}"

    def metrics_url(self, i: int) -> str:
        return f"http://{self.host}:{_port(f'NODE{i}_METRICS_PORT', 26660 + i)}"

    def rpc_batch(self, i: int, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        body = [
            {"jsonrpc": "2.0", "id": n, "method": m, "params": p} for n, (m, p) in enumerate(calls)
        ]
        req = urllib.request.Request(
            self.rpc_url(i), json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            replies = json.loads(resp.read())
        by_id = {r["id"]: r for r in replies}
        out = []
        for n in range(len(calls)):
            reply = by_id[n]
            if "error" in reply:
                raise StackError(f"node{i} {calls[n][0]}: {reply['error']}")
            out.append(reply["result"])
        return out

    def status(self, i: int) -> dict[str, Any] | None:
        """``lanenet_status`` of node i, or None while it does not answer."""
        try:
            [result] = self.rpc_batch(i, [("lanenet_status", [])])
        except (OSError, urllib.error.URLError, ValueError, StackError):
            return None
        return result if isinstance(result, dict) else None

    def heights(self, nodes: Sequence[int] = range(VALIDATORS)) -> dict[int, int]:
        """Executed height of every answering node among ``nodes``."""
        out = {}
        for i in nodes:
            st = self.status(i)
            if st is not None:
                out[i] = int(st["executed_height"])
        return out

    def block_hashes(self, i: int, first: int, last: int) -> list[str | None]:
        hashes: list[str | None] = []
        for start in range(first, last + 1, BATCH):
            stop = min(last, start + BATCH - 1)
            calls = [("eth_getBlockByNumber", [hex(h), False]) for h in range(start, stop + 1)]
            hashes += [b["hash"] if b else None for b in self.rpc_batch(i, calls)]
        return hashes

    def probe(self, i: int, path: str) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(self.metrics_url(i) + path, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    # ------------------------------------------------------------------ prometheus

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{_port('PROMETHEUS_PORT', 9099)}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query; the result vector (or matrix/scalar as a list)."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise StackError(f"{expr}: {exc.code} {exc.read().decode(errors='replace')}") from None
        if doc.get("status") != "success":
            raise StackError(f"{expr}: {doc}")
        data = doc["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result


def has_finite_value(result: list[dict[str, Any]]) -> bool:
    """True when an instant query's result holds at least one number that is not NaN/Inf."""
    for series in result:
        value = series.get("value")
        if value is not None and math.isfinite(float(value[1])):
            return True
    return False


def wait_until(
    predicate: Callable[[], bool], what: str, timeout: float, interval: float = 1.0
) -> None:
    """Poll ``predicate`` until true; raise StackError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stack_from_env() -> Stack | None:
    files = os.environ.get("LANENET_E2E_COMPOSE", "")
    return Stack(files) if files else None
