"""The Kubernetes manifests (k8s/): every overlay renders with `kubectl kustomize`, validates
against the Kubernetes schemas, and wires the node the way its config expects.

No cluster runs here, so the wiring is checked by running the manifests' own pieces: the
keygen Job's script (from the rendered ConfigMap, against a fake API server on 127.0.0.1),
then each pod's `identity` init container script on the Secrets it wrote, laid out as the
StatefulSet's projected volume would. The config that lands where the validator container
reads it must load, name the pod's own key and genesis, keep its data on the PVC mounts,
listen on the container ports and dial its peers at the StatefulSet's pod DNS names.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from node.crypto.signing import Ed25519Signer
from node.metrics.http import MetricsServer
from node.metrics.registry import Metrics
from node.rpc.fake_chain import FakeChain
from node.rpc.health import health_probes
from node.runtime.config import NodeConfig, load_genesis, load_node_config, load_validator_key

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "k8s"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
KUBECTL = shutil.which("kubectl")
# The schemas of one fixed Kubernetes release, so a new kubernetes-validate cannot move the
# goal posts; strict: an unknown (misspelt) field is an error, not ignored.
K8S_VERSION = "1.32.0"
# Prometheus Operator kinds have no schema in kubernetes-validate (they are CRDs): they are
# skipped there and checked field by field in test_monitoring_* instead.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
OVERLAYS = {"small": 4, "large": 16, "monitoring": 4}
NAMESPACE = "lanenet-test"
# NodeConfig field -> the container port name that serves it.
PORT_NAMES = {
    "grpc_port": "peer-grpc",
    "client_port": "grpc",
    "jsonrpc_port": "jsonrpc",
    "metrics_port": "metrics",
    "p2p_port": "p2p",
}

pytestmark = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl is not installed, so the k8s/ overlays cannot be rendered "
    "(install kubectl >= 1.27, which bundles kustomize)",
)

Doc = dict[str, Any]


def render(path: Path) -> list[Doc]:
    assert KUBECTL is not None
    done = subprocess.run(
        [KUBECTL, "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    out = {name: render(K8S / "overlays" / name) for name in OVERLAYS}
    out["spammer"] = render(K8S / "spammer")
    return out


def find(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    hits = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def configmaps(docs: list[Doc]) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def container(workload: Doc, name: str, init: bool = False) -> Doc:
    key = "initContainers" if init else "containers"
    return next(c for c in pod_spec(workload)[key] if c["name"] == name)


def ports_of(c: Doc) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c["ports"]}


def env_of(c: Doc, maps: dict[str, dict[str, str]], pod_name: str = "") -> dict[str, str]:
    """The container's environment as the kubelet would set it in namespace NAMESPACE."""
    fields_ = {"metadata.namespace": NAMESPACE, "metadata.name": pod_name}
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "configMapKeyRef" in e["valueFrom"]:
            ref = e["valueFrom"]["configMapKeyRef"]
            assert ref["name"] in maps, f"{e['name']} reads ConfigMap {ref['name']}: not rendered"
            env[e["name"]] = maps[ref["name"]][ref["key"]]
        else:
            env[e["name"]] = fields_[e["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def mounts_of(c: Doc) -> dict[str, str]:
    """Volume name -> mount path in this container."""
    return {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}


def validators_of(docs: list[Doc]) -> int:
    return int(configmaps(docs)["lanenet-testnet"]["validators"])


def pod_host(statefulset: Doc, docs: list[Doc], j: int) -> str:
    domain = configmaps(docs)["lanenet-testnet"]["cluster-domain"]
    service = statefulset["spec"]["serviceName"]
    return f"{statefulset['metadata']['name']}-{j}.{service}.{NAMESPACE}.svc.{domain}"


# ------------------------------------------------------------------------------ schemas


@pytest.mark.parametrize("name", [*OVERLAYS, "spammer"])
def test_every_document_validates_against_the_kubernetes_schemas(
    rendered: dict[str, list[Doc]], name: str
) -> None:
    """Each rendered document passes strict schema validation for Kubernetes 1.32."""
    import kubernetes_validate

    skipped = set()
    for doc in rendered[name]:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            skipped.add((doc["apiVersion"], doc["kind"]))
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert skipped == (CRD_KINDS if name == "monitoring" else set())


def test_schema_validation_rejects_a_misspelt_field(rendered: dict[str, list[Doc]]) -> None:
    """The validation above has teeth: a probe under a misspelt key is an error."""
    import kubernetes_validate

    statefulset = copy.deepcopy(find(rendered["small"], "StatefulSet"))
    validator = container(statefulset, "validator")
    validator["readinesProbe"] = validator.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(statefulset, K8S_VERSION, strict=True)


# ------------------------------------------------------------------------------ shape


@pytest.mark.parametrize(("name", "validators"), OVERLAYS.items())
def test_replicas_keys_and_disruption_budget_fit_the_validator_count(
    rendered: dict[str, list[Doc]], name: str, validators: int
) -> None:
    """Replicas, the testnet's validator count and the projected key Secrets all say n, and
    the disruption budget never lets more than f = (n - 1) // 3 validators go at once."""
    docs = rendered[name]
    statefulset = find(docs, "StatefulSet", "validator")
    assert statefulset["spec"]["replicas"] == validators
    assert validators_of(docs) == validators
    volumes = {v["name"]: v for v in pod_spec(statefulset)["volumes"]}
    sources = volumes["keys"]["projected"]["sources"]
    names = [s["secret"]["name"] for s in sources]
    assert names == [f"lanenet-node-{i}" for i in range(validators)]
    for i, s in enumerate(sources):
        assert {item["path"] for item in s["secret"]["items"]} == {
            f"node-{i}/config.toml",
            f"node-{i}/validator_key.json",
        }
    budget = find(docs, "PodDisruptionBudget")
    assert 1 <= budget["spec"]["maxUnavailable"] <= (validators - 1) // 3
    assert budget["spec"]["selector"] == statefulset["spec"]["selector"]


@pytest.mark.parametrize("name", [*OVERLAYS, "spammer"])
def test_pods_run_as_non_root_and_can_read_their_secrets(
    rendered: dict[str, list[Doc]], name: str
) -> None:
    """Every pod runs as a non-root user; where a Secret's files are not world-readable the
    pod's fsGroup owns them, or the node could not read its own key."""
    workloads = [d for d in rendered[name] if d["kind"] in ("StatefulSet", "Job")]
    assert workloads
    for workload in workloads:
        security = pod_spec(workload)["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
        for volume in pod_spec(workload)["volumes"]:
            source = volume.get("secret") or volume.get("projected")
            if source is not None and not source.get("defaultMode", 0o644) & 0o004:
                assert security.get("fsGroup") == security["runAsGroup"], volume["name"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_peers_can_find_each_other_before_they_are_ready(
    rendered: dict[str, list[Doc]], name: str
) -> None:
    """A validator is ready only once it reaches a quorum, so pods start in parallel and the
    headless Service publishes their DNS names before readiness (else none ever gets ready)."""
    docs = rendered[name]
    statefulset = find(docs, "StatefulSet", "validator")
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    headless = find(docs, "Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= pod_labels.items()
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    anti = pod_spec(statefulset)["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pod_labels.items()


def test_container_ports_are_the_node_default_ports(rendered: dict[str, list[Doc]]) -> None:
    """The validator container exposes exactly the ports a NodeConfig listens on by default,
    the Services point at those names, and the scrape annotation names the metrics port."""
    defaults = {f.name: f.default for f in fields(NodeConfig) if f.name in PORT_NAMES}
    for name in OVERLAYS:
        docs = rendered[name]
        statefulset = find(docs, "StatefulSet", "validator")
        ports = ports_of(container(statefulset, "validator"))
        assert ports == {PORT_NAMES[f]: port for f, port in defaults.items()}
        annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == ports["metrics"]
        assert annotations["prometheus.io/path"] == "/metrics"
        for service in (d for d in docs if d["kind"] == "Service"):
            for p in service["spec"]["ports"]:
                assert ports[p["targetPort"]] == p["port"], (service["metadata"]["name"], p)


def test_probes_ask_paths_the_metrics_server_answers(rendered: dict[str, list[Doc]]) -> None:
    """Readiness asks /readyz and liveness and startup /healthz on the metrics port, and a
    metrics server with the node's health probes answers each of them (200 or 503, not 404)."""
    statefulset = find(rendered["small"], "StatefulSet", "validator")
    validator = container(statefulset, "validator")
    probes = {kind: validator[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    probes["startupProbe"] = validator["startupProbe"]["httpGet"]
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["startupProbe"]["path"] == "/healthz"
    assert {p["port"] for p in probes.values()} == {"metrics"}
    assert validator["livenessProbe"]["failureThreshold"] * validator["livenessProbe"][
        "periodSeconds"
    ] >= 60, "liveness must be lenient: a node busy replaying its store is not dead"

    async def statuses() -> dict[str, int]:
        server = MetricsServer(
            Metrics(process_metrics=False).registry,
            health_probes(FakeChain()),
            host="127.0.0.1",
            port=0,
        )
        await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                got = {}
                for path in [p["path"] for p in probes.values()] + ["/metrics"]:
                    async with session.get(f"http://127.0.0.1:{server.port}{path}") as reply:
                        got[path] = reply.status
                return got
        finally:
            await server.stop()

    got = asyncio.run(statuses())
    assert got["/healthz"] == 200
    assert got["/readyz"] in (200, 503)
    assert got["/metrics"] == 200


# ------------------------------------------------------------------------------ keygen + pods


@dataclass
class FakeApi:
    """Secrets and ConfigMaps of one namespace, as the API server would keep them."""

    objects: dict[tuple[str, str], Doc]
    token: str = "test-token"
    forbid: bool = False
    url: str = ""


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    prefix = f"/api/v1/namespaces/{NAMESPACE}/"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, body: Doc) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self) -> tuple[str, str | None] | None:
            if self.headers.get("Authorization") != f"Bearer {api.token}":
                self._reply(401, {"message": "Unauthorized"})
                return None
            if api.forbid:
                self._reply(403, {"message": "forbidden"})
                return None
            if not self.path.startswith(prefix):
                self._reply(404, {"message": f"no route {self.path}"})
                return None
            kind, _, name = self.path[len(prefix) :].partition("/")
            return kind, name or None

        def _body(self) -> Doc:
            length = int(self.headers.get("Content-Length", "0"))
            doc: Doc = json.loads(self.rfile.read(length))
            return doc

        def do_GET(self) -> None:
            route = self._route()
            if route is None:
                return
            found = api.objects.get((route[0], route[1] or ""))
            self._reply(200, found) if found else self._reply(404, {"message": "not found"})

        def do_POST(self) -> None:
            route = self._route()
            if route is None:
                return
            doc = self._body()
            key = (route[0], doc["metadata"]["name"])
            if key in api.objects:
                self._reply(409, {"message": "already exists"})
                return
            api.objects[key] = doc
            self._reply(201, doc)

        def do_PUT(self) -> None:
            route = self._route()
            if route is None:
                return
            key = (route[0], route[1] or "")
            if key not in api.objects:
                self._reply(404, {"message": "not found"})
                return
            api.objects[key] = self._body()
            self._reply(200, api.objects[key])

    return Handler


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi(objects={})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield api
    server.shutdown()
    server.server_close()
    thread.join()


def stub_lanenet(tmp: Path, status_exit: int = 0) -> tuple[Path, Path]:
    """A stand-in `lanenet` in a fresh bin directory that logs each call's arguments (one
    call a line, tab-separated) and answers `lanenet status` with ``status_exit``."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp / "calls"
    stub = bin_dir / "lanenet"
    stub.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$(printf '%s\\t' \"$@\")\" >> {calls}\n"
        f'[ "$1" = status ] && exit {status_exit}\n'
        "exit 0\n"
    )
    stub.chmod(0o755)
    return bin_dir, calls


def logged_calls(calls: Path) -> list[list[str]]:
    lines = calls.read_text().splitlines() if calls.exists() else []
    return [line.rstrip("\t").split("\t") for line in lines]


def lanenet_bin() -> str:
    found = Path(sys.executable).parent / "lanenet"
    assert found.exists(), f"{found}: lanenet is not installed in this environment"
    return str(found)


def run_keygen(
    docs: list[Doc], api: FakeApi, tmp: Path, **override: str
) -> subprocess.CompletedProcess[str]:
    """Run the keygen Job's container as the cluster would: its command on the script from
    the rendered ConfigMap, with its environment, pointed at ``api``."""
    job = find(docs, "Job", "lanenet-keygen")
    keygen = container(job, "keygen")
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    interpreter, script = keygen["command"]
    assert interpreter == "python3"
    [scripts] = [v for v, path in mounts_of(keygen).items() if Path(script).parent == Path(path)]
    scripts_dir = tmp / "scripts"
    scripts_dir.mkdir(exist_ok=True)
    for key, text in configmaps(docs)[volumes[scripts]["configMap"]["name"]].items():
        (scripts_dir / key).write_text(text)
    (tmp / "token").write_text(api.token)
    env = {
        **env_of(keygen, configmaps(docs)),
        "PATH": os.environ["PATH"],
        "K8S_API": api.url,
        "K8S_TOKEN_FILE": str(tmp / "token"),
        "LANENET_BIN": lanenet_bin(),
        **override,
    }
    return subprocess.run(
        [sys.executable, str(scripts_dir / Path(script).name)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def keygen_role_allows(docs: list[Doc], verb: str, resource: str) -> bool:
    job = find(docs, "Job", "lanenet-keygen")
    account = pod_spec(job)["serviceAccountName"]
    for binding in (d for d in docs if d["kind"] == "RoleBinding"):
        if {"kind": "ServiceAccount", "name": account} not in binding["subjects"]:
            continue
        role = find(docs, "Role", binding["roleRef"]["name"])
        for rule in role["rules"]:
            if resource in rule["resources"] and verb in rule["verbs"]:
                return True
    return False


def secret_files(api: FakeApi, name: str) -> dict[str, bytes]:
    found = api.objects.get(("secrets", name))
    assert found is not None, f"the keygen Job did not create Secret {name}"
    return {k: base64.b64decode(v) for k, v in found["data"].items()}


def lay_out_volumes(statefulset: Doc, api: FakeApi, root: Path) -> dict[str, Path]:
    """A directory per pod volume: the projected key Secrets and the genesis ConfigMap filled
    from what the keygen Job stored, the others empty (emptyDir, PVC)."""
    dirs = {}
    for volume in pod_spec(statefulset)["volumes"]:
        where = root / volume["name"]
        where.mkdir(parents=True)
        dirs[volume["name"]] = where
        if "projected" in volume:
            for source in volume["projected"]["sources"]:
                files = secret_files(api, source["secret"]["name"])
                for item in source["secret"]["items"]:
                    (where / item["path"]).parent.mkdir(parents=True, exist_ok=True)
                    (where / item["path"]).write_bytes(files[item["key"]])
        elif "configMap" in volume:
            found = api.objects.get(("configmaps", volume["configMap"]["name"]))
            assert found is not None, f"no ConfigMap {volume['configMap']['name']}"
            for key, text in found["data"].items():
                (where / key).write_text(text)
    for claim in statefulset["spec"]["volumeClaimTemplates"]:
        dirs[claim["metadata"]["name"]] = root / claim["metadata"]["name"]
    return dirs


def localize(path: str, mounts: dict[str, str], dirs: dict[str, Path]) -> str:
    """``path`` inside the container -> the test directory of the volume mounted there."""
    for volume, mount in mounts.items():
        if path == mount or path.startswith(mount.rstrip("/") + "/"):
            return str(dirs[volume]) + path[len(mount.rstrip("/")) :]
    raise AssertionError(f"{path} is on no volume of the container ({mounts})")


def run_identity(
    statefulset: Doc, docs: list[Doc], dirs: dict[str, Path], ordinal: int
) -> subprocess.CompletedProcess[str]:
    """Run the `identity` init container's script for pod ``ordinal`` on ``dirs``."""
    init = container(statefulset, "identity", init=True)
    pod = f"{statefulset['metadata']['name']}-{ordinal}"
    mounts = mounts_of(init)
    env = env_of(init, configmaps(docs), pod_name=pod)
    for key in ("KEYS_DIR", "GENESIS_DIR", "OUT_DIR"):
        env[key] = localize(env[key], mounts, dirs)
    env["PATH"] = os.environ["PATH"]
    return subprocess.run(
        [*init["command"], *init["args"]], env=env, capture_output=True, text=True, check=False
    )


def run_validator(
    statefulset: Doc, docs: list[Doc], dirs: dict[str, Path], ordinal: int, tmp: Path
) -> list[str]:
    """Start the validator container of pod ``ordinal`` on ``dirs`` through the image's
    entrypoint (deploy/entrypoint.sh), with a stand-in `lanenet`; return what it ran."""
    validator = container(statefulset, "validator")
    assert "command" not in validator, "the image's entrypoint starts the node"
    mounts = mounts_of(validator)
    env = env_of(validator, configmaps(docs), f"{statefulset['metadata']['name']}-{ordinal}")
    env["LANENET_CONFIG"] = localize(env["LANENET_CONFIG"], mounts, dirs)
    bin_dir, calls = stub_lanenet(tmp)
    env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    env["TMPDIR"] = str(tmp)
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), *validator["args"]],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [call] = logged_calls(calls)
    return call


@pytest.mark.parametrize("name", ["small", "large"])
def test_every_pod_gets_a_config_that_fits_its_manifest(
    rendered: dict[str, list[Doc]], fake_api: FakeApi, tmp_path: Path, name: str
) -> None:
    """After the keygen Job, the identity init container and the image's entrypoint,
    validator-i runs `lanenet node run` on a config with index i, its own key (the genesis'
    validator i), the genesis, data and archive on its two PVC mounts, the container ports,
    and peers at the other pods' DNS names."""
    docs = rendered[name]
    n = validators_of(docs)
    done = run_keygen(docs, fake_api, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"testnet of {n} validators written" in done.stdout
    assert ("secrets", "lanenet-dev-accounts") in fake_api.objects
    for kind, resource in fake_api.objects:
        assert keygen_role_allows(docs, "create", kind), f"the Role may not create {kind}"
        assert fake_api.objects[(kind, resource)]["metadata"]["labels"]

    statefulset = find(docs, "StatefulSet", "validator")
    validator = container(statefulset, "validator")
    ports = ports_of(validator)
    mounts = mounts_of(validator)
    claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
    assert claims == {"data", "archive"}
    for i in range(n):
        dirs = lay_out_volumes(statefulset, fake_api, tmp_path / f"pod{i}")
        init = run_identity(statefulset, docs, dirs, i)
        assert init.returncode == 0, init.stderr
        ran = run_validator(statefulset, docs, dirs, i, tmp_path / f"pod{i}")
        assert ran[:3] == ["node", "run", "--config"] and ran[4:] == ["--log-format", "json"]
        cfg = load_node_config(Path(ran[3]))
        assert (cfg.index, cfg.name) == (i, f"node{i}")
        genesis = load_genesis(cfg.genesis_path)
        assert len(genesis.validators) == n
        assert cfg.genesis_path.resolve().is_relative_to(dirs["identity"].resolve())
        seed = load_validator_key(cfg.key_path)
        assert Ed25519Signer(seed).public_key == genesis.validators[i].public_key
        assert cfg.data_dir == Path(mounts["data"])
        assert cfg.archive_dir == Path(mounts["archive"])
        assert cfg.listen_host == "0.0.0.0"
        assert {PORT_NAMES[f]: getattr(cfg, f) for f in PORT_NAMES} == ports
        assert [(p.index, p.host, p.port) for p in cfg.peers] == [
            (j, pod_host(statefulset, docs, j), ports["peer-grpc"]) for j in range(n) if j != i
        ]
        assert cfg.p2p_bootstrap
        for address in cfg.p2p_bootstrap:
            host = re.fullmatch(r"/dns4/([^/]+)/tcp/(\d+)/p2p/\w+", address)
            assert host is not None, address
            others = {pod_host(statefulset, docs, j) for j in range(n) if j != i}
            assert host[1] in others and int(host[2]) == ports["p2p"]

    dirs = lay_out_volumes(statefulset, fake_api, tmp_path / "extra")
    extra = run_identity(statefulset, docs, dirs, n)
    assert extra.returncode != 0
    assert "more replicas than the testnet has validators" in extra.stderr


def test_keygen_keeps_an_existing_testnet_and_refuses_another_size(
    rendered: dict[str, list[Doc]], fake_api: FakeApi, tmp_path: Path
) -> None:
    """A second keygen run (Job re-created) keeps the keys, so running pods stay valid; asked
    for another validator count it fails and says why, changing nothing."""
    docs = rendered["small"]
    assert run_keygen(docs, fake_api, tmp_path).returncode == 0
    before = copy.deepcopy(fake_api.objects)
    again = run_keygen(docs, fake_api, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already in namespace" in again.stdout
    other = run_keygen(docs, fake_api, tmp_path, VALIDATORS="16")
    assert other.returncode == 1
    assert "already holds a testnet of 4 validators, but 16 are asked for" in other.stderr
    assert fake_api.objects == before


def test_keygen_says_what_is_missing(
    rendered: dict[str, list[Doc]], fake_api: FakeApi, tmp_path: Path
) -> None:
    """Without the Role the Job's error names it; a missing setting is named too."""
    docs = rendered["small"]
    fake_api.forbid = True
    denied = run_keygen(docs, fake_api, tmp_path)
    assert denied.returncode == 1
    assert "forbidden" in denied.stderr and "lanenet-keygen Role" in denied.stderr
    fake_api.forbid = False
    unset = run_keygen(docs, fake_api, tmp_path, VALIDATORS="")
    assert unset.returncode == 1
    assert "VALIDATORS is not set" in unset.stderr
    assert fake_api.objects == {}


# ------------------------------------------------------------------------------ spammer


def run_spammer(
    rendered: dict[str, list[Doc]], tmp: Path, status_exit: int, **override: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Run the spammer Job's script with a stand-in `lanenet` that logs its arguments."""
    job = find(rendered["spammer"], "Job", "lanenet-spammer")
    spammer = container(job, "spammer")
    bin_dir, calls = stub_lanenet(tmp, status_exit)
    maps = {**configmaps(rendered["small"]), **configmaps(rendered["spammer"])}
    env = {**env_of(spammer, maps), "PATH": f"{bin_dir}:{os.environ['PATH']}", **override}
    done = subprocess.run(
        [*spammer["command"], *spammer["args"]],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return done, logged_calls(calls)


def test_spammer_loads_every_validator_of_the_deployed_testnet(
    rendered: dict[str, list[Doc]], tmp_path: Path
) -> None:
    """The spammer Job waits for each validator's JSON-RPC, then runs `lanenet spam` on all
    their JSON-RPC and gRPC client ports, with the dev accounts the keygen Job stored."""
    done, calls = run_spammer(rendered, tmp_path, status_exit=0)
    assert done.returncode == 0, done.stderr
    statefulset = find(rendered["small"], "StatefulSet", "validator")
    ports = ports_of(container(statefulset, "validator"))
    hosts = [pod_host(statefulset, rendered["small"], j) for j in range(4)]
    assert [c for c in calls if c[0] == "status"] == [
        ["status", f"http://{h}:{ports['jsonrpc']}"] for h in hosts
    ]
    spam = calls[-1]
    assert spam[0] == "spam"
    args = dict(zip(spam[1::2], spam[2::2], strict=False))
    spam_config = configmaps(rendered["spammer"])["lanenet-spam"]
    assert args["--tps"] == spam_config["tps"] and args["--duration"] == spam_config["duration"]
    assert args["--rpc"].split(",") == [f"http://{h}:{ports['jsonrpc']}" for h in hosts]
    assert args["--grpc"].split(",") == [f"{h}:{ports['grpc']}" for h in hosts]
    job = find(rendered["spammer"], "Job", "lanenet-spammer")
    spammer = container(job, "spammer")
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    mount = next(
        v for v, path in mounts_of(spammer).items() if args["--keys"].startswith(path + "/")
    )
    assert volumes[mount]["secret"]["secretName"] == "lanenet-dev-accounts"
    assert Path(args["--keys"]).name == "accounts.json"


def test_spammer_gives_up_on_a_validator_that_never_answers(
    rendered: dict[str, list[Doc]], tmp_path: Path
) -> None:
    """When a validator does not answer within the wait, the Job fails and names it."""
    done, calls = run_spammer(rendered, tmp_path, status_exit=1, WAIT_SECONDS="0")
    assert done.returncode == 1
    assert "validator-0.validators" in done.stderr and "did not answer" in done.stderr
    assert not [c for c in calls if c[0] == "spam"]


# ------------------------------------------------------------------------------ monitoring


def metric_names() -> set[str]:
    names = set()
    for family in Metrics(process_metrics=False).registry.collect():
        names.update(sample.name for sample in family.samples)
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def test_monitoring_scrapes_the_validators_metrics_port(rendered: dict[str, list[Doc]]) -> None:
    """The PodMonitor selects the validator pods and scrapes their named metrics port."""
    docs = rendered["monitoring"]
    statefulset = find(docs, "StatefulSet", "validator")
    monitor = find(docs, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in ports_of(container(statefulset, "validator"))
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"


def alert_rules(docs: list[Doc]) -> list[Doc]:
    rule = find(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_alerts_query_metrics_the_node_exports(rendered: dict[str, list[Doc]]) -> None:
    """Every alert has a severity and a summary and queries only metrics the node defines;
    stalled height and view-change storms are covered."""
    rules = alert_rules(rendered["monitoring"])
    known = metric_names()
    used = set()
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook"]
        names = set(re.findall(r"\blanenet_[a-z0-9_]+", rule["expr"]))
        assert names, rule["alert"]
        assert names <= known, f"{rule['alert']} queries unknown metrics {names - known}"
        used |= names
    assert {"lanenet_consensus_committed_height", "lanenet_consensus_view_changes_total"} <= used


needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, check=False)


@needs_promtool
def test_alert_rules_pass_promtool(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    """Prometheus' own checker accepts the rule groups (PromQL syntax, templates)."""
    rule = find(rendered["monitoring"], "PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


# Minute-by-minute series: in namespace "halted" every validator stops at height 50 after 5
# minutes; in "one" validator-1 stops while validator-0 goes on, validator-0 changes view 10
# times a minute and validator-1 once, and validator-0 executes nothing, so its execution
# falls 10 blocks a minute behind (past 100 at 11 minutes). Each alert must fire for exactly
# its case, once its `for` has passed.
ALERT_SERIES = {
    'lanenet_consensus_committed_height{namespace="halted",pod="validator-0"}': "0+10x5 50x25",
    'lanenet_consensus_committed_height{namespace="halted",pod="validator-1"}': "0+10x5 50x25",
    'lanenet_consensus_committed_height{namespace="one",pod="validator-0"}': "0+10x30",
    'lanenet_consensus_committed_height{namespace="one",pod="validator-1"}': "0+10x5 50x25",
    'lanenet_consensus_view_changes_total{namespace="one",pod="validator-0"}': "0+10x30",
    'lanenet_consensus_view_changes_total{namespace="one",pod="validator-1"}': "0+1x30",
    'lanenet_execution_executed_height{namespace="one",pod="validator-0"}': "0x30",
    'lanenet_execution_executed_height{namespace="one",pod="validator-1"}': "0+10x5 50x25",
}
EXPECTED_ALERTS = {
    (6, "LanenetNetworkHalted"): [],
    (12, "LanenetNetworkHalted"): [{"severity": "critical", "namespace": "halted"}],
    (12, "LanenetHeightStalled"): [
        {"severity": "warning", "namespace": "one", "pod": "validator-1"}
    ],
    (4, "LanenetViewChangeStorm"): [],
    (12, "LanenetViewChangeStorm"): [
        {"severity": "warning", "namespace": "one", "pod": "validator-0"}
    ],
    (12, "LanenetExecutionLagging"): [],
    (18, "LanenetExecutionLagging"): [
        {"severity": "warning", "namespace": "one", "pod": "validator-0"}
    ],
}


@needs_promtool
def test_alerts_fire_for_their_case_only(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    """On synthetic series (promtool test rules), a halted network, one stalled validator, a
    view-change storm and lagging execution each raise their alert and nothing else."""
    rules = alert_rules(rendered["monitoring"])
    assert {alert for _, alert in EXPECTED_ALERTS} == {r["alert"] for r in rules}
    # Annotations are left out: promtool would compare their rendered text, which is prose;
    # `check rules` above covers their templates.
    bare = [{k: v for k, v in r.items() if k != "annotations"} for r in rules]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "t", "rules": bare}]}))
    cases = [
        {
            "eval_time": f"{minute}m",
            "alertname": alert,
            "exp_alerts": [{"exp_labels": labels} for labels in expected],
        }
        for (minute, alert), expected in EXPECTED_ALERTS.items()
    ]
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": k, "values": v} for k, v in ALERT_SERIES.items()],
                "alert_rule_test": cases,
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    done = promtool("test", "rules", str(tmp_path / "test.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
