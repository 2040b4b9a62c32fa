"""The deployment files: Kubernetes manifests validated against the Kubernetes schemas
(``kubernetes-validate``, offline), their Ember flags parsed by Ember's own CLI parser, the
Containerfile and the systemd unit checked the same way."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ember.cli._main import build_parser

DEPLOY = Path(__file__).parents[2] / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES = "1.30.0"  # the oldest release still maintained when these were written


def _docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def _kind(kind: str) -> dict[str, Any]:
    found = [d for _, d in _docs() if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


@pytest.mark.parametrize(("name", "doc"), _docs(), ids=lambda v: v if isinstance(v, str) else "")
def test_manifest_is_valid_against_the_kubernetes_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk


def _expand(args: list[str], env: dict[str, str]) -> list[str]:
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in args]


def test_statefulset_runs_a_node_ember_accepts() -> None:
    sts = _kind("StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {"POD_NAME": "ember-0", "POD_IP": "10.1.2.3", "POD_NAMESPACE": "default"}
    args = build_parser().parse_args(_expand(container["args"], env))
    assert (args.command, args.node_cmd, args.name) == ("node", "start", "ember-0")
    assert args.discovery == "dns"
    assert args.dns == f"{sts['spec']['serviceName']}.default.svc.cluster.local:7000"
    assert args.admin == "0.0.0.0:9100" and args.advertise == "10.1.2.3:7000"
    # The cookie comes from the Secret, mounted where --cookie-file points.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    cookie = next(n for n, v in volumes.items() if "secret" in v)
    assert volumes[cookie]["secret"]["secretName"] == _kind("Secret")["metadata"]["name"]
    assert str(args.cookie_file) == f"{mounts[cookie]}/cookie"
    # The Raft data directory is the claim every pod gets.
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert mounts[claim["metadata"]["name"]] == str(args.data_dir)
    # Probes on the admin API's open routes.
    port = next(p for p in container["ports"] if p["name"] == "admin")["containerPort"]
    assert args.admin.endswith(f":{port}")
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    # A graceful leave (the mesh's leave_timeout, 2 s in the LAN profile) fits the grace.
    assert pod["terminationGracePeriodSeconds"] >= 10


def test_headless_service_and_disruption_budget_keep_the_quorum() -> None:
    sts = _kind("StatefulSet")
    services = {d["metadata"]["name"]: d for _, d in _docs() if d["kind"] == "Service"}
    headless = services[sts["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True  # peers found before ready
    pdb = _kind("PodDisruptionBudget")
    replicas = sts["spec"]["replicas"]
    assert replicas - pdb["spec"]["maxUnavailable"] >= replicas // 2 + 1
    labels = sts["spec"]["template"]["metadata"]["labels"]
    for selector in (pdb["spec"]["selector"]["matchLabels"], headless["spec"]["selector"]):
        assert selector.items() <= labels.items()


def test_containerfile_runs_the_cli_as_a_non_root_user() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    final = text.split("\nFROM ")[-1]  # the runtime stage
    user = re.search(r"^USER (\S+)", final, re.M)
    assert user is not None and not user.group(1).startswith(("0", "root"))
    entry = re.search(r"^ENTRYPOINT (\[.*\])$", final, re.M)
    cmd = re.search(r"^CMD (\[.*\])$", final, re.M)
    assert entry is not None and cmd is not None
    assert yaml.safe_load(entry.group(1)) == ["ember"]
    args = build_parser().parse_args(yaml.safe_load(cmd.group(1)))
    assert (args.command, args.node_cmd) == ("node", "start")


def _exec_start(unit: str) -> list[str]:
    line = re.search(r"^ExecStart=(.*?)(?<!\\)$", unit, re.M | re.S)
    assert line is not None
    return shlex.split(line.group(1).replace("\\\n", " "))


def test_systemd_unit_starts_a_node_and_stops_it_gracefully(tmp_path: Path) -> None:
    unit = (DEPLOY / "systemd" / "ember.service").read_text()
    env = dict(
        line.split("=", 1)
        for line in (DEPLOY / "systemd" / "ember.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    argv = [re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], a) for a in _exec_start(unit)]
    assert argv[0] == "/opt/ember/bin/ember"
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.node_cmd, args.name) == ("node", "start", env["EMBER_NAME"])
    assert "KillSignal=SIGTERM" in unit and re.search(r"^User=ember$", unit, re.M)
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return  # the parse above is the check; systemd's own needs systemd installed
    copy = tmp_path / "ember.service"
    copy.write_text(unit.replace("/opt/ember/bin/ember", "/bin/true"))
    done = subprocess.run(
        [analyze, "verify", str(copy)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"SYSTEMD_LOG_LEVEL": "warning", "PATH": "/usr/bin:/bin"},
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "ember.service" in line and "User=" not in line
    ]
    assert problems == []
