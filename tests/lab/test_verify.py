"""`verify` against the lab after site.yml: real SSH, systemd, a real 3-member etcd cluster and
the flannel key in it, and the real kubectl (Debian's 1.20) on the master talking to the FAKE
API server, a test double (tests/support/fake_apiserver.py) that puts the API in states a real
cluster reaches only slowly or not at will. This classic lab has no Kubernetes binaries (the
real 1.20 API server and kubelets are tested in test_kubernetes.py), no flannel and no docker:
their checks must be `skip`, never `pass`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from k8s_provision import facts, verify
from k8s_provision import lab as lab_api
from k8s_provision.model import Cluster
from k8s_provision.report import Check, Report
from tests.support.fake_apiserver import ready_scenario

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent.parent
VENV_BIN = Path(sys.executable).parent
FAKE_APISERVER = Path(__file__).parent.parent / "support" / "fake_apiserver.py"
FAKE_UNIT = "k8sp-fake-apiserver"  # a transient unit, gone when stopped
NOT_ON_DEBIAN = (
    "flanneld",
    "docker",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
)


def run_on(lab: lab_api.LabState, host: str, command: str) -> str:
    return lab_api.ssh_run(host, command, config=lab.config, check=True).stdout


def cli_verify(inventory_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "k8s-provision"), "verify", str(inventory_path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def row(report: Report, host: str, check: str) -> Check:
    matches = [c for c in report.checks if c.host == host and c.check == check]
    assert len(matches) == 1, f"{host} {check}: {matches}"
    return matches[0]


def wait_for(what: str, probe: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def fake_api(
    converged_lab: lab_api.LabState, cluster: Cluster
) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Start the fake API server on the master; yields a function that sets its scenario (the
    server re-reads the file on every request). Stopped at the end of the module."""
    lab = converged_lab
    run_on(lab, "master", f"systemctl stop {FAKE_UNIT} 2>/dev/null; true")
    lab_api.ssh_run(
        "master",
        "cat > /root/fake_apiserver.py",
        input=FAKE_APISERVER.read_text(encoding="utf-8"),
        config=lab.config,
        check=True,
    )

    def set_scenario(scenario: dict[str, Any]) -> None:
        lab_api.ssh_run(
            "master",
            "cat > /root/fake-scenario.json.new && mv /root/fake-scenario.json.new"
            " /root/fake-scenario.json",
            input=json.dumps(scenario),
            config=lab.config,
            check=True,
        )

    set_scenario({})
    port = cluster.settings.kube_api_port
    run_on(
        lab,
        "master",
        f"systemd-run --unit={FAKE_UNIT} --description='FAKE apiserver (test double)'"
        f" python3 /root/fake_apiserver.py --port {port}"
        f" --advertise {cluster.master.ip}:{port} --scenario /root/fake-scenario.json",
    )
    url = f"http://{cluster.master.ip}:{port}/healthz"
    wait_for(
        "the fake API server answers",
        lambda: lab_api.ssh_run("master", f"curl -sf {url}", config=lab.config).stdout == "ok",
    )
    try:
        yield set_scenario
    finally:
        run_on(lab, "master", f"systemctl stop {FAKE_UNIT}; rm -f /root/fake-scenario.json")


def all_ready(cluster: Cluster) -> dict[str, Any]:
    nodes = [(cluster.host(n).kube_node_name, cluster.host(n).ip) for n in cluster.nodes]
    return ready_scenario(nodes, len(cluster.etcd))


# --- no API server: the converged Debian lab --------------------------------------------------


def test_converged_lab_verifies_ok(converged_lab: lab_api.LabState, cluster: Cluster) -> None:
    result = cli_verify(converged_lab.inventory)
    document = json.loads(result.stdout)  # stdout is the JSON document and nothing else
    assert result.returncode == 0, result.stdout + result.stderr
    assert document["ok"] is True
    report = Report(tuple(Check(**c) for c in document["checks"]))
    assert cluster.etcd == ("master", "node1", "node2")
    for member in cluster.etcd:
        assert row(report, member, "ssh").status == "pass"
        assert row(report, member, "unit:etcd").status == "pass"
        assert row(report, member, "etcd:health").status == "pass"
        members = row(report, member, "etcd:members")
        assert (members.status, members.detail) == ("pass", "3 members: master, node1, node2")
    network_key = row(report, "master", "flannel:network-key")
    assert network_key.status == "pass"
    assert f"Network {cluster.settings.flannel_network}" in network_key.detail


def test_verify_over_direct_tcp_connections(
    converged_lab: lab_api.LabState, tmp_path: Path
) -> None:
    """As on a real network: run from inside the lab's network namespace with an inventory
    without the relay, verify opens TCP connections to each sshd itself (ssh/tcp.py sets up
    their sockets)."""
    text = converged_lab.inventory.read_text()
    direct = re.sub(r' -o ProxyCommand="[^"]*"', "", text)
    assert direct != text and "ProxyCommand" not in direct
    inventory = tmp_path / "direct.ini"
    inventory.write_text(direct)
    netns = lab_api.NETNS_DIR / converged_lab.config.net_ns
    result = subprocess.run(
        ["nsenter", f"--net={netns}", str(VENV_BIN / "k8s-provision"), "verify", str(inventory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify: OK" in result.stdout


def test_components_not_installed_are_skipped_never_passed(cluster: Cluster) -> None:
    report = verify.verify(cluster)
    for host in cluster.hosts:
        for unit in facts.host_units(host):
            if unit in NOT_ON_DEBIAN:
                found = row(report, host.name, f"unit:{unit}")
                assert (found.status, found.detail) == (
                    "skip",
                    f"{unit} is not installed on this host",
                )
        if host.is_node:
            assert row(report, host.name, "docker0:subnet").status == "skip"
        assert row(report, host.name, "flannel:lease").detail == (
            "flanneld is not installed on this host"
        )
    port = cluster.settings.kube_api_port
    for name in ("apiserver:healthz", "kubectl:cs", "kubectl:nodes"):
        skipped = row(report, "master", name)
        assert skipped.status == "skip"
        assert skipped.detail == (
            f"kube-apiserver is not installed on this host and nothing answers on"
            f" {cluster.master.ip}:{port}"
        )


def test_stopped_etcd_member_fails_naming_host_and_etcd(
    converged_lab: lab_api.LabState, cluster: Cluster
) -> None:
    lab = converged_lab
    run_on(lab, "node1", "systemctl stop etcd")
    try:
        result = cli_verify(lab.inventory)
        assert result.returncode == 1, result.stdout + result.stderr
        document = json.loads(result.stdout)
        assert document["ok"] is False
        failed = {
            (c["host"], c["check"]): c["detail"]
            for c in document["checks"]
            if c["status"] == "fail"
        }
        assert ("node1", "etcd:health") in failed
        assert (
            "etcd member node1 at http://192.168.10.2:2379 is unhealthy"
            in failed[("node1", "etcd:health")]
        )
        assert "inactive (dead)" in failed[("node1", "unit:etcd")]
        assert {host for host, _ in failed} == {"node1"}
        assert "node1 etcd:health" in result.stderr
    finally:
        run_on(lab, "node1", "systemctl start etcd")
    wait_for(
        "etcd on node1 healthy again",
        lambda: verify.verify(cluster).ok,
    )


def test_unreachable_host_is_one_failed_ssh_check(
    converged_lab: lab_api.LabState, tmp_path: Path
) -> None:
    # Nothing listens on port 2222: node2 is unreachable, the lab itself stays untouched.
    text = converged_lab.inventory.read_text(encoding="utf-8")
    text = text.replace(
        "node2 ansible_host=192.168.10.3", "node2 ansible_port=2222 ansible_host=192.168.10.3"
    )
    broken = tmp_path / "inventory.ini"
    broken.write_text(text, encoding="utf-8")
    result = cli_verify(broken)
    assert result.returncode == 1
    rows = [c for c in json.loads(result.stdout)["checks"] if c["host"] == "node2"]
    assert len(rows) == 1
    assert rows[0]["check"] == "ssh"
    assert rows[0]["status"] == "fail"
    assert "192.168.10.3:2222" in rows[0]["detail"]
    assert "Connection refused" in rows[0]["detail"]


# --- the real kubectl against the fake API server -------------------------------------------

REFUSED = (
    "Get http://127.0.0.1:10252/healthz: dial tcp 127.0.0.1:10252: getsockopt: connection refused"
)
SCENARIOS: list[dict[str, Any]] = [
    {"name": "all Ready", "change": None, "nodes": ("pass", []), "cs": ("pass", [])},
    {
        "name": "NotReady node",
        "change": {"node": "node2", "ready": "Unknown"},
        "nodes": ("fail", ["node2 NotReady", "Kubelet stopped posting node status."]),
        "cs": ("pass", []),
    },
    {
        "name": "node missing",
        "change": {"node": "node2", "missing": True},
        "nodes": ("fail", ["node2 is not registered"]),
        "cs": ("pass", []),
    },
    {
        "name": "unhealthy component",
        "change": {"component": "controller-manager", "message": REFUSED},
        "nodes": ("pass", []),
        "cs": ("fail", [f"controller-manager Unhealthy ({REFUSED})"]),
    },
]


def scenario_for(cluster: Cluster, change: dict[str, Any] | None) -> dict[str, Any]:
    scenario = all_ready(cluster)
    if change and "node" in change:
        nodes = [n for n in scenario["nodes"] if n["name"] != change["node"] or "ready" in change]
        for node in nodes:
            if node["name"] == change["node"]:
                node["ready"] = change["ready"]
        scenario["nodes"] = nodes
    if change and "component" in change:
        for component in scenario["components"]:
            if component["name"] == change["component"]:
                component.update(healthy=False, message=change["message"])
    return scenario


@pytest.mark.parametrize("case", SCENARIOS, ids=[c["name"] for c in SCENARIOS])
def test_kubectl_checks_against_the_fake_api_server(
    cluster: Cluster,
    fake_api: Callable[[dict[str, Any]], None],
    case: dict[str, Any],
) -> None:
    fake_api(scenario_for(cluster, case["change"]))
    report = verify.verify(cluster)
    for check, (status, texts) in (("kubectl:nodes", case["nodes"]), ("kubectl:cs", case["cs"])):
        found = row(report, "master", check)
        assert found.status == status, found.detail
        for text in texts:
            assert text in found.detail
    assert row(report, "master", "apiserver:healthz").status == "pass"
    port = cluster.settings.kube_api_port
    insecure = row(report, "master", "security:insecure-port")
    assert insecure.status == "warn"
    assert f"anyone who reaches {cluster.master.ip}:{port}" in insecure.detail
    # kube-apiserver itself is still not installed: the double never turns a skip into a pass.
    assert row(report, "master", "unit:kube-apiserver").status == "skip"
    assert report.ok is (case["nodes"][0] == case["cs"][0] == "pass")
