"""The keygen Job: make a testnet's keys, genesis and node configs once and store them in the
namespace, where the validator StatefulSet picks them up.

Writes, through the Kubernetes API with the Job's ServiceAccount token:

- Secret ``lanenet-node-<i>`` per validator: ``config.toml`` and ``validator_key.json``
  (``lanenet testnet generate`` with the container layout: base ports on every pod, bind
  0.0.0.0, peers by the StatefulSet's pod DNS names, data and archive on the pod's volumes);
- Secret ``lanenet-dev-accounts``: ``accounts.json`` (funded dev keys, for the spammer);
- ConfigMap ``lanenet-genesis``: ``genesis.json``, written last, so its presence means done.

Idempotent: when ``lanenet-genesis`` exists the Job checks that it has as many validators as
asked and exits; a run that died half-way is redone (Secrets are replaced). Standard library
only, so it runs on any image that has ``lanenet``. Settings come from the environment (see
``Settings.from_env``); ``K8S_API`` points it at another API server (the tests use a fake).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
GENESIS_CONFIGMAP = "lanenet-genesis"
ACCOUNTS_SECRET = "lanenet-dev-accounts"
NODE_SECRET = "lanenet-node-{i}"
MANAGED_BY = {"app.kubernetes.io/part-of": "lanenet", "app.kubernetes.io/managed-by": "keygen"}


class KeygenError(Exception):
    """A problem the operator has to fix; printed as one line, exit status 1."""


@dataclass(frozen=True)
class Settings:
    validators: int
    chain_id: int
    namespace: str
    statefulset: str
    service: str
    cluster_domain: str
    data_dir: str
    archive_dir: str
    lanenet: str
    api: str
    token_file: Path
    ca_file: Path | None

    @staticmethod
    def from_env(env: dict[str, str]) -> Settings:
        def need(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise KeygenError(f"environment variable {name} is not set")
            return value

        def number(name: str) -> int:
            text = need(name)
            if not text.isdigit() or int(text) < 1:
                raise KeygenError(f"{name} must be a positive integer, got {text!r}")
            return int(text)

        api = env.get("K8S_API", "").strip()
        if not api:
            host, port = need("KUBERNETES_SERVICE_HOST"), need("KUBERNETES_SERVICE_PORT")
            api = f"https://{'[' + host + ']' if ':' in host else host}:{port}"
        ca = env.get("K8S_CA_FILE", str(SA_DIR / "ca.crt"))
        return Settings(
            validators=number("VALIDATORS"),
            chain_id=number("CHAIN_ID"),
            namespace=need("POD_NAMESPACE"),
            statefulset=need("STATEFULSET"),
            service=need("PEER_SERVICE"),
            cluster_domain=env.get("CLUSTER_DOMAIN", "cluster.local").strip() or "cluster.local",
            data_dir=need("DATA_DIR"),
            archive_dir=need("ARCHIVE_DIR"),
            lanenet=env.get("LANENET_BIN", "lanenet"),
            api=api.rstrip("/"),
            token_file=Path(env.get("K8S_TOKEN_FILE", str(SA_DIR / "token"))),
            ca_file=Path(ca) if api.startswith("https:") else None,
        )

    @property
    def host_template(self) -> str:
        """Pod i's DNS name through the headless Service (what every peer dials)."""
        return f"{self.statefulset}-{{i}}.{self.service}.{self.namespace}.svc.{self.cluster_domain}"


class Api:
    """The few calls the Job makes: get, create and replace namespaced objects."""

    def __init__(self, settings: Settings) -> None:
        self._base = f"{settings.api}/api/v1/namespaces/{settings.namespace}"
        self._namespace = settings.namespace
        try:
            self._token = settings.token_file.read_text().strip()
        except OSError as exc:
            raise KeygenError(
                f"cannot read the ServiceAccount token {settings.token_file}: {exc.strerror} "
                "(is automountServiceAccountToken off?)"
            ) from None
        self._context = (
            ssl.create_default_context(cafile=str(settings.ca_file)) if settings.ca_file else None
        )

    def get(self, kind: str, name: str) -> dict[str, object] | None:
        status, body = self._call("GET", f"{kind}/{name}")
        if status == 404:
            return None
        self._check(status, body, f"get {kind}/{name}")
        return body

    def put(self, kind: str, name: str, obj: dict[str, object]) -> None:
        """Create ``obj`` (named ``name``), or replace the object of that name if it exists."""
        status, body = self._call("POST", kind, obj)
        if status == 409:
            status, body = self._call("PUT", f"{kind}/{name}", obj)
        self._check(status, body, f"write {kind}/{name}")

    def _check(self, status: int, body: dict[str, object], what: str) -> None:
        if status == 403:
            raise KeygenError(
                f"{what} in namespace {self._namespace} was forbidden: the Job's ServiceAccount "
                "needs the lanenet-keygen Role (get, create, update on secrets and configmaps)"
            )
        if not 200 <= status < 300:
            raise KeygenError(f"{what}: the API server answered {status}: {body.get('message')}")

    def _call(
        self, method: str, path: str, obj: dict[str, object] | None = None
    ) -> tuple[int, dict[str, object]]:
        data = json.dumps(obj).encode() if obj is not None else None
        request = urllib.request.Request(f"{self._base}/{path}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30, context=self._context) as reply:
                return reply.status, json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read() or b"{}")
            except ValueError:
                body = {}
            return exc.code, body if isinstance(body, dict) else {}
        except (urllib.error.URLError, OSError) as exc:
            raise KeygenError(f"cannot reach the API server at {self._base}: {exc}") from None


def secret(name: str, files: dict[str, bytes]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": MANAGED_BY},
        "type": "Opaque",
        "data": {key: base64.b64encode(value).decode() for key, value in files.items()},
    }


def configmap(name: str, files: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": MANAGED_BY},
        "data": files,
    }


def generate(settings: Settings, directory: Path) -> None:
    """``lanenet testnet generate`` with the container layout for this StatefulSet."""
    command = [
        settings.lanenet,
        "testnet",
        "generate",
        "--validators",
        str(settings.validators),
        "--chain-id",
        str(settings.chain_id),
        "--dir",
        str(directory),
        "--host-template",
        settings.host_template,
        "--listen-host",
        "0.0.0.0",
        "--same-ports",
        "--data-dir",
        settings.data_dir,
        "--archive-dir",
        settings.archive_dir,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise KeygenError(f"cannot run {settings.lanenet}: {exc.strerror}") from None
    if done.returncode != 0:
        raise KeygenError(f"{' '.join(command)} failed: {done.stderr.strip() or done.stdout}")


def existing_validators(genesis: dict[str, object]) -> int:
    data = genesis.get("data")
    text = data.get("genesis.json") if isinstance(data, dict) else None
    try:
        validators = json.loads(text)["validators"] if isinstance(text, str) else None
    except (TypeError, KeyError, ValueError):
        validators = None
    if not isinstance(validators, list):
        raise KeygenError(
            f"ConfigMap {GENESIS_CONFIGMAP} exists but holds no readable genesis.json; delete it "
            "(and the lanenet-node-* Secrets) to generate a new testnet"
        )
    return len(validators)


def run(settings: Settings) -> str:
    """Store the testnet unless it is there; return what was done, for the Job's log."""
    api = Api(settings)
    found = api.get("configmaps", GENESIS_CONFIGMAP)
    if found is not None:
        have = existing_validators(found)
        if have != settings.validators:
            raise KeygenError(
                f"namespace {settings.namespace} already holds a testnet of {have} validators, "
                f"but {settings.validators} are asked for: a validator set is fixed at genesis. "
                "Delete the testnet (see the README, Kubernetes) or deploy the matching overlay"
            )
        return f"testnet of {have} validators already in namespace {settings.namespace}; kept"
    with tempfile.TemporaryDirectory(prefix="lanenet-keygen-") as tmp:
        directory = Path(tmp) / "testnet"
        generate(settings, directory)
        for i in range(settings.validators):
            node_dir = directory / f"node{i}"
            files = {
                "config.toml": (node_dir / "config.toml").read_bytes(),
                "validator_key.json": (node_dir / "validator_key.json").read_bytes(),
            }
            name = NODE_SECRET.format(i=i)
            api.put("secrets", name, secret(name, files))
        accounts = (directory / "accounts.json").read_bytes()
        api.put("secrets", ACCOUNTS_SECRET, secret(ACCOUNTS_SECRET, {"accounts.json": accounts}))
        genesis = {"genesis.json": (directory / "genesis.json").read_text()}
        api.put("configmaps", GENESIS_CONFIGMAP, configmap(GENESIS_CONFIGMAP, genesis))
    return (
        f"testnet of {settings.validators} validators written to namespace "
        f"{settings.namespace} (peers {settings.host_template})"
    )


def main() -> int:
    try:
        print(run(Settings.from_env(dict(os.environ))))
    except KeygenError as exc:
        print(f"lanenet keygen: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
