"""The scripts the roles and verify share to tell whether a service runs with its files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from k8s_provision import service_state


def test_state_script_hashes_the_files_in_order_and_reports_no_record(tmp_path: Path) -> None:
    first, second = tmp_path / "config", tmp_path / "it's apiserver"
    first.write_text("A=1\n")
    second.write_text("B=2\n")
    script = service_state.state_script(
        {"kube-apiserver": [str(first), str(second)], "kubelet": [str(tmp_path / "missing")]}
    )
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    states = service_state.parse_states(out)
    assert states["kube-apiserver"].on_disk == hashlib.sha256(b"A=1\nB=2\n").hexdigest()
    assert states["kube-apiserver"].applied == service_state.NO_RECORD
    assert states["kubelet"].on_disk == hashlib.sha256(b"").hexdigest()
    # The probes' variant asks no systemctl; the rest of its output is the same.
    quiet = service_state.state_script({"kubelet": [str(first)]}, active=False)
    assert "systemctl" not in quiet
    out = subprocess.run(["sh", "-c", quiet], capture_output=True, text=True, check=True).stdout
    assert service_state.parse_states(out)["kubelet"] == service_state.ConfigState(
        service_state.NO_RECORD, hashlib.sha256(b"A=1\n").hexdigest(), "unknown"
    )


def test_a_file_changed_after_the_service_started_makes_it_stale(tmp_path: Path) -> None:
    """The record matches the file again, but the process started before the file was put
    back (restarted by hand with an edit, or by its crash loop): a backup moved into place
    keeps its old mtime, not its ctime."""
    backup, conf = tmp_path / "etcd.saved", tmp_path / "it's etcd"  # a quote and a space
    backup.write_text("A=1\n")
    os.utime(backup, (time.time() - 3600, time.time() - 3600))
    backup.rename(conf)
    digest = hashlib.sha256(b"A=1\n").hexdigest()
    record = f"{service_state.APPLIED_DIR}/etcd"
    script = service_state.state_script({"etcd": [str(conf)]}, active=False).replace(
        record, str(tmp_path / "record")
    )
    (tmp_path / "record").write_text(digest + "\n")

    def state(started_ago: float | None) -> service_state.ConfigState:
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
        if started_ago is None:
            return service_state.parse_states(out.stdout)["etcd"]
        started = int((time.monotonic() - started_ago) * 1_000_000)
        return service_state.parse_states(out.stdout, {"etcd": started})["etcd"]

    assert state(started_ago=60).stale  # the file changed after the process started
    assert state(started_ago=60).applied == digest  # though its bytes match the record
    assert not state(started_ago=-5).stale  # started after the change
    # Within the clock's slack, and without a start (never ran), nothing is judged stale.
    assert not state(started_ago=0.2).stale
    assert not state(started_ago=None).stale


def test_the_roles_variant_reads_each_units_state_and_start_from_systemctl() -> None:
    a = "a" * 64
    text = (
        "ActiveState=active\nUnitFileState=enabled\n"  # the etcd role's own probe, before
        "config-clock 1800000050.25 1000.00\n"  # 2027-01-15 08:00:50.25 UTC
        "config-units\n"
        "ActiveState=active\nExecMainStartTimestampMonotonic=900000000\n\n"
        "ActiveState=failed\nExecMainStartTimestampMonotonic=0\n"
        "config-units\n"
        "config-ctime 2027-01-15 08:00:00.5 +0000 /etc/kubernetes/config\n"
        "config-ctime 2027-01-15 07:00:00.0 +0000 /etc/kubernetes/scheduler\n"
        f"config-state kube-apiserver {a} {a} unknown\n"
        "config-file kube-apiserver /etc/kubernetes/config\n"
        "config-file kube-apiserver /etc/kubernetes/apiserver\n"  # missing: no ctime
        f"config-state kube-scheduler {a} {a} unknown\n"
        "config-file kube-scheduler /etc/kubernetes/config\n"
        "config-file kube-scheduler /etc/kubernetes/scheduler\n"
    )
    states = service_state.parse_states(text)
    # Started 100 s ago (07:59:10.25), its file changed 50.25 s later.
    assert states["kube-apiserver"] == service_state.ConfigState(a, a, "active", True)
    assert states["kube-scheduler"] == service_state.ConfigState(a, a, "failed", False)
    # As a role's `raw` returns it, through a pty.
    assert service_state.parse_states(text.replace("\n", "\r\n")) == states


def test_unit_paths_follow_the_components_each_unit_reads() -> None:
    files = [
        ("/etc/etcd/etcd.conf", "etcd"),
        ("/etc/kubernetes/config", "kubernetes"),
        ("/etc/kubernetes/kubelet", "kubelet"),
    ]
    assert service_state.unit_paths(files, ["etcd", "kubelet", "kube-proxy", "docker"]) == {
        "etcd": ["/etc/etcd/etcd.conf"],
        "kubelet": ["/etc/kubernetes/config", "/etc/kubernetes/kubelet"],
        "kube-proxy": ["/etc/kubernetes/config"],
    }


@pytest.mark.parametrize("unit,digest", [("etcd", "; rm -rf /"), ("sshd", "a" * 64)])
def test_record_script_refuses_anything_but_a_known_unit_and_a_digest(
    unit: str, digest: str
) -> None:
    with pytest.raises(ValueError):
        service_state.record_script(unit, digest)


def test_config_check_fails_a_stale_unit_and_warns_on_a_missing_record() -> None:
    paths = {"etcd": ["/etc/default/etcd"], "flanneld": ["/etc/default/flanneld"]}
    a, b = "a" * 64, "b" * 64
    stale = service_state.config_check(
        "node1",
        {"etcd": True, "flanneld": True},
        paths,
        f"config-state etcd {a} {b} active\nconfig-state flanneld {a} {a} active\n",
    )
    assert stale is not None and stale.status == "fail"
    assert stale.detail.endswith("etcd (reads /etc/default/etcd)")
    unknown = service_state.config_check(
        "node1", {"etcd": True}, paths, f"config-state etcd - {a} active\n"
    )
    assert unknown is not None and unknown.status == "warn"
    assert service_state.config_check("node1", {"etcd": False}, paths, "") is None
