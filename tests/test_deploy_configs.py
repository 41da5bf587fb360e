"""Every configuration docs/deployment.md shows is a file in deploy/, shown verbatim, and each is either used
by an end-to-end test (the nginx and HAProxy ones: tests/test_e2e_behind_proxies.py) or checked here by
parsing it: the systemd units, the Dockerfile and the Kubernetes Deployment, whose monoceros command lines
are resolved by monoceros itself (--print-config), so a flag that does not exist fails here."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DOCS = (REPO / "docs" / "deployment.md").read_text()
FILES = sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def resolve(args: list[str], env: dict[str, str] | None = None) -> dict[str, str]:
    """monoceros's own reading of a command line: the settings it resolves to (TOML lines, as text)."""
    assert Path(args[0]).name == "monoceros", args
    out = subprocess.run(
        [sys.executable, "-m", "monoceros", "--print-config", *args[1:]],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MONOCEROS_")}, **(env or {})},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    settings = {}
    for line in out.stdout.splitlines():
        name, sep, value = line.partition(" = ")
        if sep and not line.startswith("#"):
            settings[name] = value
    return settings


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(DEPLOY)) for p in FILES])
def test_the_docs_show_each_file_verbatim(path: Path) -> None:
    assert path.read_text() in DOCS, f"docs/deployment.md does not show {path.relative_to(REPO)} as it is"


def test_every_fenced_config_in_the_deployment_docs_is_a_deploy_file() -> None:
    texts = [p.read_text() for p in FILES]
    for block in re.findall(r"```(?:nginx|ini|dockerfile|yaml|haproxy)\n(.*?)```", DOCS, re.S):
        assert any(block in text for text in texts), f"a config in the docs that no test uses:\n{block[:300]}"


def test_systemd_units() -> None:
    socket_unit = configparser.ConfigParser(strict=False, interpolation=None)
    socket_unit.read(DEPLOY / "systemd" / "monoceros.socket")
    assert socket_unit["Socket"]["ListenStream"] == "127.0.0.1:8000"
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read(DEPLOY / "systemd" / "monoceros.service")
    unit = service["Service"]
    assert unit["Type"] == "notify" and unit["NotifyAccess"] == "main"
    assert "monoceros.socket" in service["Unit"]["Requires"]
    name, _, value = unit["Environment"].partition("=")
    settings = resolve(shlex.split(unit["ExecStart"]), {name: value})
    assert settings["admin_bind"] == '"127.0.0.1:9000"'
    assert settings["workers"] == "4"
    drain = float(settings["drain_delay"])
    assert int(unit["TimeoutStopSec"]) > drain + float(settings["graceful_timeout"]), "systemd would kill it mid-drain"
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_dockerfile() -> None:
    lines = (DEPLOY / "docker" / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    instructions = [line.split(None, 1) for line in lines if line.strip() and not line.startswith("#")]
    kinds = [kind for kind, _ in instructions]
    assert kinds[0] == "FROM" and dict(instructions)["FROM"].startswith("python:3.11-slim")
    user = dict(instructions)["USER"]
    assert user not in ("root", "0"), "the image runs as root"
    assert kinds.index("USER") < kinds.index("CMD")
    command = json.loads(dict(instructions)["CMD"])
    settings = resolve(command)
    admin_port = settings["admin_bind"].strip('"').rsplit(":", 1)[1]
    assert admin_port in dict(instructions)["EXPOSE"].split()


def test_kubernetes_deployment() -> None:
    deployment = yaml.safe_load((DEPLOY / "kubernetes" / "deployment.yaml").read_text())
    assert deployment["kind"] == "Deployment"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    settings = resolve(container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings["admin_bind"] == f'"0.0.0.0:{ports["admin"]}"'
    assert settings["bind"] == f'["0.0.0.0:{ports["http"]}"]'
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["admin"])
    drain, graceful = float(settings["drain_delay"]), float(settings["graceful_timeout"])
    assert drain > 0
    assert pod["terminationGracePeriodSeconds"] > drain + graceful, "Kubernetes would kill it mid-drain"
    assert pod["securityContext"]["runAsNonRoot"] is True
    token = next(e for e in container["env"] if e["name"] == "MONOCEROS_ADMIN_TOKEN")
    assert "secretKeyRef" in token["valueFrom"]
    assert resolve(container["args"], {"MONOCEROS_ADMIN_TOKEN": "x"})["admin_token"] == '"x"'


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (.ci/run installs it)")
def test_haproxy_accepts_its_config() -> None:
    out = subprocess.run(
        ["haproxy", "-c", "-f", str(DEPLOY / "haproxy" / "haproxy.cfg")], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stdout + out.stderr
