"""`k8s-provision up` end to end on the lab: preflight, site.yml through the runner, verify.
A stopped etcd member is caught by verify and healed by the next `up`; a failing task is named
with its host; an unreachable host stops `up` before anything changes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from k8s_provision import lab as lab_api
from tests.lab.helpers import cli

pytestmark = pytest.mark.lab


def on(lab: lab_api.LabState, host: str, command: str) -> subprocess.CompletedProcess[str]:
    return lab_api.ssh_run(host, command, config=lab.config)


@pytest.fixture(scope="module")
def provisioned(lab: lab_api.LabState) -> lab_api.LabState:
    # The session lab is this session's K8S_PROVISION_LAB_NAME, so `up --lab` provisions it;
    # --full: earlier modules may have converged it, and this module checks the normal path.
    result = cli("up", "--lab", "--full")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "preflight: 3 hosts ready" in result.stdout
    assert "verify: OK" in result.stdout
    log = next(line for line in result.stdout.splitlines() if line.startswith("site.yml: ok"))
    assert Path(log.rsplit("log: ", 1)[1]).is_file()
    return lab


def test_verify_is_ok_with_etcd_passing_on_every_member(provisioned: lab_api.LabState) -> None:
    result = cli("verify", str(provisioned.inventory), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True
    health = {c["host"]: c["status"] for c in document["checks"] if c["check"] == "etcd:health"}
    assert health == {"master": "pass", "node1": "pass", "node2": "pass"}


def test_stopped_etcd_is_caught_and_up_heals_it(provisioned: lab_api.LabState) -> None:
    on(provisioned, "node2", "systemctl stop etcd")
    broken = cli("verify", str(provisioned.inventory), "--json")
    assert broken.returncode == 1
    failed = [c for c in json.loads(broken.stdout)["checks"] if c["status"] == "fail"]
    assert {c["host"] for c in failed} == {"node2"}
    assert any(c["check"].startswith("etcd") for c in failed)

    healed = cli("up", str(provisioned.inventory))
    assert healed.returncode == 0, healed.stdout[-4000:] + healed.stderr[-2000:]
    assert "verify: OK" in healed.stdout
    assert on(provisioned, "node2", "systemctl is-active etcd").stdout.strip() == "active"


def test_a_failing_task_is_named_with_host_task_and_log(provisioned: lab_api.LabState) -> None:
    # A file where the /etc/kubernetes directory belongs makes a task fail on node1.
    on(provisioned, "node1", "mv /etc/kubernetes /root/kubernetes.saved && touch /etc/kubernetes")
    try:
        result = cli("up", str(provisioned.inventory))
        assert result.returncode == 1
        assert "error: site.yml failed on 1 host: node1" in result.stderr
        assert "node1: task '" in result.stderr
        assert "Traceback" not in result.stderr
        log = next(line for line in result.stderr.splitlines() if "full log: " in line)
        assert Path(log.split("full log: ", 1)[1]).is_file()
    finally:
        on(provisioned, "node1", "rm /etc/kubernetes && mv /root/kubernetes.saved /etc/kubernetes")
    assert cli("up", str(provisioned.inventory)).returncode == 0


def test_unreachable_host_stops_up_before_any_change(
    provisioned: lab_api.LabState, tmp_path: Path
) -> None:
    # The same lab, but node2 on a port where nothing listens.
    text = provisioned.inventory.read_text().replace(
        "node2 ansible_host=192.168.10.3", "node2 ansible_host=192.168.10.3 ansible_port=2222"
    )
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(text)
    result = cli("up", str(inventory), timeout=120)
    assert result.returncode == 1
    assert "preflight failed on node2; no host was changed" in result.stderr
    assert "node2: ssh: cannot reach 192.168.10.3:2222" in result.stderr
    assert "Connection refused" in result.stderr
    # The fast path may say site.yml would run on node2; preflight stops it from starting.
    assert "site.yml: running" not in result.stdout
    assert "play:" not in result.stdout
