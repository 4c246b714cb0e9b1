"""`verify` against the lab after site.yml: real SSH, systemd, a real 3-member etcd cluster and
the flannel key in it. The Kubernetes checks against the lab's real 1.20 control plane and
nodes are in test_kubernetes.py (the API double, tests/support/fake_apiserver.py, serves unit tests
only). The Debian lab has no flannel or docker: their checks must be `skip`, never `pass`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from k8s_provision import facts, verify
from k8s_provision import lab as lab_api
from k8s_provision.model import Cluster
from k8s_provision.report import Check, Report

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent.parent
VENV_BIN = Path(sys.executable).parent
NOT_ON_DEBIAN = ("flanneld", "docker")


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


# --- the converged Debian lab ----------------------------------------------------------------


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
        assert row(report, host.name, "flannel:lease").detail.startswith(
            "flannel is not running in the lab"
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
