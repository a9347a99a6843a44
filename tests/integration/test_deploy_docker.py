"""`lanenet deploy` across two Docker engines on this machine: 4 validators (two per engine,
host networking, peers meet on 127.0.0.1) commit transfers with identical block hashes,
status lists them, and down removes containers and volumes.

Needs root, the `dockerd` binary and the image ``$LANENET_IMAGE`` (default lanenet:ci, built
from deploy/Dockerfile) on the local engine (DOCKER_HOST or the default socket); it is
skipped otherwise. .ci/e2e runs it after building the image.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.tools import deploy
from node.tools.invariants import RpcNode, check_all
from node.tools.perturb import settle
from node.tools.perturb_load import RecordingLoad, derive_keys, fund
from node.tools.perturb_targets import NodeInfo

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMAGE = os.environ.get("LANENET_IMAGE", "lanenet:ci")
ENGINE_START_S = 30.0


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to start Docker engines"
    if shutil.which("dockerd") is None:
        return "needs dockerd (apt-get install docker.io)"
    try:
        import docker

        docker.from_env().images.get(IMAGE)
    except Exception as exc:  # noqa: BLE001 (no engine, or no image: either way, skip)
        return f"needs image {IMAGE} on the local Docker engine ({type(exc).__name__})"
    return None


def test_the_deploy_prerequisites_are_there_when_ci_requires_them() -> None:
    """.ci/e2e sets LANENET_E2E_REQUIRE after building the image: a skip there is a failure."""
    reason = _skip_reason()
    if reason is not None and os.environ.get("LANENET_E2E_REQUIRE"):
        pytest.fail(f"the deploy test would be skipped: {reason}")


def _free_base() -> int:
    """A base_port whose 5 blocks of 4 ports (base + 100k + i) are all free."""
    for base in range(21000, 31000, 500):
        ports = [base + 100 * k + i for k in range(5) for i in range(4)]
        with contextlib.ExitStack() as stack:
            try:
                for port in ports:
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return base
    raise RuntimeError("no free port block")


@contextlib.contextmanager
def engine(root: Path) -> Iterator[str]:
    """A dockerd of its own (socket, data, exec root, pidfile, a bridge of its own, no
    iptables). Not --bridge=none: a dockerd started so deletes the host's docker0, which
    broke the default engine's containers for every later test."""
    root.mkdir(parents=True)
    sock = root / "docker.sock"
    log = (root / "dockerd.log").open("wb")
    digest = hashlib.sha256(str(root).encode()).digest()
    bridge = "lnd" + digest[:4].hex()
    subprocess.run(["ip", "link", "add", "name", bridge, "type", "bridge"], check=True)
    subnet = f"10.{200 + digest[4] % 50}.{digest[5]}.1/24"
    subprocess.run(["ip", "addr", "add", subnet, "dev", bridge], check=True)
    command = ["dockerd", f"--host=unix://{sock}", f"--data-root={root / 'data'}"]
    command += [f"--exec-root={root / 'exec'}", f"--pidfile={root / 'docker.pid'}"]
    command += [f"--bridge={bridge}", "--iptables=false", "--ip-masq=false"]
    proc = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"unix://{sock}"
    try:
        deadline = time.monotonic() + ENGINE_START_S
        while True:
            try:
                deploy.connect(url)
                break
            except Exception:  # noqa: BLE001 (not up yet)
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((root / "dockerd.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        # dockerd leaves its default network namespace mounted; the data roots are large
        netns = root / "exec" / "netns" / "default"
        if netns.exists():
            subprocess.run(["umount", str(netns)], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)


@pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
def test_deploy_four_validators_on_two_engines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with engine(Path("/tmp") / f"lanenet-deploy-{os.getpid()}-a") as one, engine(
        Path("/tmp") / f"lanenet-deploy-{os.getpid()}-b"
    ) as two:
        hosts = tmp_path / "hosts.toml"
        hosts.write_text(
            f'name = "dtest"\nimage = "{IMAGE}"\nbase_port = {_free_base()}\n'
            f'[[host]]\ndocker_host = "{one}"\naddress = "127.0.0.1"\nvalidators = [0, 2]\n'
            f'[[host]]\ndocker_host = "{two}"\naddress = "127.0.0.1"\nvalidators = [1, 3]\n'
        )
        base = ["--hosts", str(hosts)]
        try:
            state = tmp_path / "state"
            assert deploy.main([*base, "up", "--state", str(state), "--json"]) == 0
            rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["nodes"]
            assert [r["container"] for r in rows] == [f"dtest-node{i}" for i in (0, 2, 1, 3)]
            assert {r["docker_host"] for r in rows} == {one, two}
            assert all(r["state"] == "running" and r["peers"] == 3 for r in rows)
            _load_and_check(rows, state)

            assert deploy.main([*base, "status"]) == 0
            table = capsys.readouterr().out
            assert table.count("running") == 4
        finally:
            assert deploy.main([*base, "down", "--volumes"]) == 0
        assert "removed 4 containers and their volumes" in capsys.readouterr().out
        for url in (one, two):
            client = deploy.connect(url)
            assert client.containers.list(all=True) == []
            assert client.volumes.list(filters={"label": "lanenet.deploy=dtest"}) == []
        assert deploy.main([*base, "status"]) == 1  # nothing runs any more


def _load_and_check(rows: list[dict[str, object]], state: Path) -> None:
    """Transfers at 30 tx/s for 5 s: all commit once, every node lists the same blocks."""
    by_index = sorted(rows, key=lambda r: str(r["container"]))
    infos = [NodeInfo(f"node{i}", i, str(r["jsonrpc"])) for i, r in enumerate(by_index)]
    dev = json.loads((state / "accounts.json").read_text())
    dev_key = bytes.fromhex(dev[-1]["private_key"][2:])
    keys = derive_keys(len(infos), 2)
    fund(infos, dev_key, keys, chain_id=7357)
    load = RecordingLoad(infos, keys, tps=30, chain_id=7357)
    load.start()
    time.sleep(5)  # the load's duration, not a wait for an event
    load.stop()
    nodes = [RpcNode(n.name, n.jsonrpc) for n in infos]
    assert settle(nodes, load.accepted, timeout=30)
    verdict = check_all(nodes, load.accepted, liveness_bound_s=None)  # idle: no blocks
    assert verdict.violations == []
    assert verdict.txs is not None and verdict.txs.committed_once == len(load.accepted) > 50
    assert verdict.common_height > 0
