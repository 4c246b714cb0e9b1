"""The scripts the roles and verify share to tell whether a service runs with its files."""

from __future__ import annotations

import hashlib
import subprocess
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
