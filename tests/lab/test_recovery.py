"""Runs that stop half-way heal on the next run, on the lab with real etcd: a service that runs
with an older configuration than its files on disk is found by verify (config:stale) and
restarted by the next run, exactly that one, and the run after changes nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from k8s_provision import lab as lab_api
from k8s_provision import service_state, verify
from k8s_provision.model import Cluster

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent.parent


def site(lab: lab_api.LabState) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(lab.inventory),
            str(REPO / "playbooks" / "site.yml"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return result


def etcd_pid(lab: lab_api.LabState, host: str) -> str:
    return lab_api.ssh_run(
        host, "systemctl show -p MainPID --value etcd", config=lab.config, check=True
    ).stdout.strip()


def test_a_service_older_than_its_config_is_reported_and_restarted_alone(
    converged_lab: lab_api.LabState, cluster: Cluster
) -> None:
    lab = converged_lab
    before = {h: etcd_pid(lab, h) for h in cluster.etcd}
    # What a run stopped between writing etcd's file and restarting etcd leaves: the file
    # is right, etcd was started with other bytes.
    lab_api.ssh_run(
        "node1",
        f"echo {'0' * 64} > {service_state.APPLIED_DIR}/etcd",
        config=lab.config,
        check=True,
    )
    report = verify.verify(cluster)
    stale = [c for c in report.checks if c.check == "config:stale" and c.status == "fail"]
    assert [c.host for c in stale] == ["node1"], report.checks
    assert "etcd (reads /etc/default/etcd)" in stale[0].detail

    site(lab)
    after = {h: etcd_pid(lab, h) for h in cluster.etcd}
    assert after["node1"] != before["node1"]
    assert {h: p for h, p in after.items() if h != "node1"} == {
        h: p for h, p in before.items() if h != "node1"
    }
    assert verify.verify(cluster).ok
    changed = re.findall(r"^\S+\s*:\s*ok=\d+\s+changed=(\d+)", site(lab).stdout, re.MULTILINE)
    assert changed and set(changed) == {"0"}
