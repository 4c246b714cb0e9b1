"""The scripts the roles and verify share to tell whether a service runs with its files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from k8s_provision import service_state


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(script: str) -> str:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout


def test_state_script_digests_the_files_in_order_and_reports_no_record(tmp_path: Path) -> None:
    first, second = tmp_path / "config", tmp_path / "it's apiserver"
    first.write_text("A=1\n")
    second.write_text("B=2\n")
    missing = tmp_path / "missing"
    script = service_state.state_script(
        {"kube-apiserver": [str(first), str(second)], "kubelet": [str(missing)]}
    )
    states = service_state.parse_states(run(script))
    a, b = sha(first.read_bytes()), sha(second.read_bytes())
    listed = f"{a}  {first}\n{b}  {second}\n"
    assert states["kube-apiserver"].on_disk == "files-sha256:" + sha(listed.encode())
    assert states["kube-apiserver"].applied == service_state.NO_RECORD
    assert states["kube-apiserver"].stale
    assert states["kubelet"].on_disk == "files-sha256:" + sha(f"-  {missing}\n".encode())
    # A file edited, or one missing that comes back empty, makes another record.
    second.write_text("B=3\n")
    missing.touch()
    again = service_state.parse_states(run(script))
    assert again["kube-apiserver"].on_disk != states["kube-apiserver"].on_disk
    assert again["kubelet"].on_disk != states["kubelet"].on_disk
    # The probes' variant asks no systemctl; the rest of its output is the same.
    quiet = service_state.state_script({"kubelet": [str(first)]}, active=False)
    assert "systemctl" not in quiet
    assert service_state.parse_states(run(quiet))["kubelet"] == service_state.ConfigState(
        service_state.NO_RECORD,
        service_state.files_record([str(first)], {str(first): sha(b"A=1\n")}),
        "unknown",
    )


def test_a_record_of_the_older_form_is_still_read(tmp_path: Path) -> None:
    """Hosts converged by an earlier version hold the SHA-256 of the files' bytes run together:
    while it matches, the unit is not stale (no restart on upgrade) and `on_disk` is the record
    the roles write in its place; once the files differ, it is stale."""
    conf, certificate = tmp_path / "etcd.conf", tmp_path / "etcd.crt"
    conf.write_text("A=1\n")
    certificate.write_text("PEM\n")
    record = tmp_path / "record"
    script = service_state.state_script(
        {"etcd": [str(conf), str(certificate)]}, active=False
    ).replace(f"{service_state.APPLIED_DIR}/etcd", str(record))
    record.write_text(sha(b"A=1\nPEM\n") + "\n")
    older = service_state.parse_states(run(script))["etcd"]
    assert not older.stale and older.applied == sha(b"A=1\nPEM\n")
    assert older.on_disk.startswith("files-sha256:")
    record.write_text(older.on_disk + "\n")  # as the role's record step writes it
    current = service_state.parse_states(run(script))["etcd"]
    assert not current.stale and current.older_on_disk == ""
    conf.write_text("A=2\n")
    assert service_state.parse_states(run(script))["etcd"].stale
    record.write_text(sha(b"A=1\nPEM\n") + "\n")
    assert service_state.parse_states(run(script))["etcd"].stale


def test_a_file_changed_after_the_service_started_makes_it_stale(tmp_path: Path) -> None:
    """The record matches the file again, but the process started before the file was put
    back (restarted by hand with an edit, or by its crash loop): a backup moved into place
    keeps its old mtime, not its ctime."""
    backup, conf = tmp_path / "etcd.saved", tmp_path / "it's etcd"  # a quote and a space
    backup.write_text("A=1\n")
    os.utime(backup, (time.time() - 3600, time.time() - 3600))
    backup.rename(conf)
    digest = service_state.files_record([str(conf)], {str(conf): sha(b"A=1\n")})
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
    # Records of the older form (no sha256sum lines: every file reads as missing).
    apiserver = service_state.files_record(
        ["/etc/kubernetes/config", "/etc/kubernetes/apiserver"], {}
    )
    scheduler = service_state.files_record(
        ["/etc/kubernetes/config", "/etc/kubernetes/scheduler"], {}
    )
    # Started 100 s ago (07:59:10.25), its file changed 50.25 s later.
    assert states["kube-apiserver"] == service_state.ConfigState(a, apiserver, "active", True, a)
    assert states["kube-scheduler"] == service_state.ConfigState(a, scheduler, "failed", False, a)
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


@pytest.mark.parametrize(
    "unit,digest",
    [
        ("etcd", "; rm -rf /"),
        ("sshd", "files-sha256:" + "a" * 64),
        ("etcd", "a" * 64),  # the older form is read, never written
        ("etcd", "files-sha256:" + "a" * 64 + "; reboot"),
    ],
)
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
