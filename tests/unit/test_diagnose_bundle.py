"""diagnose's run without hosts: the journal window, what is collected per host, the bundle
(atomic, 0600, per-host members, manifest, secrets redacted), the runbook and the CLI's exit
codes and output."""

from __future__ import annotations

import json
import os
import re
import stat
import tarfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from k8s_provision import diagnose, inventory, runbook
from k8s_provision.cli import cli
from k8s_provision.diagnose import Collected, Finding, collection
from k8s_provision.diagnose import signatures as sigfile
from k8s_provision.errors import UsageError
from k8s_provision.model import Cluster
from k8s_provision.probes import Output
from tests.unit.diagnose_faults import (
    NETWORK_JSON,
    NOW,
    REFERENCE,
    TOKEN,
    Fault,
    combine,
    edited,
    failed_with,
    healthy,
    key_gone,
    outputs,
    stamp,
    stopped,
    unreachable,
)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return inventory.load(REFERENCE)


# ---------------------------------------------------------------------------------------------
# Journal, disk, firewall


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("1h", "-1h"),
        ("30m", "-30min"),
        ("90s", "-90s"),
        ("2d", "-2d"),
        ("2026-01-31 10:00", "2026-01-31 10:00"),
    ],
)
def test_since(since: str, expected: str) -> None:
    assert diagnose.journal_since(since) == expected


@pytest.mark.parametrize("since", ["5x", "yesterday; rm -rf /", "-1h", ""])
def test_bad_since_is_a_usage_error(since: str) -> None:
    with pytest.raises(UsageError, match="--since"):
        diagnose.journal_since(since)


# ---------------------------------------------------------------------------------------------
# Probes


def test_probes_are_framed_and_follow_roles(cluster: Cluster) -> None:
    node1 = {p.name: p.command for p in diagnose.probes_for(cluster, cluster.host("node1"), "-1h")}
    master = {
        p.name: p.command for p in diagnose.probes_for(cluster, cluster.host("master"), "-1h")
    }
    for probes in (node1, master):
        assert all(" " not in name for name in probes)  # the batch framing splits on spaces
    assert node1["journal:kubelet"].startswith(
        "journalctl _SYSTEMD_UNIT=kubelet.service + UNIT=kubelet.service +"
        " SYSLOG_IDENTIFIER=kubelet --since=-1h"
    )
    assert "SYSLOG_IDENTIFIER=dockerd SYSLOG_IDENTIFIER=dockerd-current" in node1["journal:docker"]
    assert "file:/etc/kubernetes/kubelet" in node1
    assert "kubectl-describe-nodes" not in node1
    assert master["kubectl-get-pods"].endswith("get pods --all-namespaces -o wide")
    assert "etcd-members" in master  # verify's probe, reused rather than run twice
    assert (
        (node1["etcd-cluster-health-v2"])
        == "ETCDCTL_API=2 etcdctl --endpoints=http://192.168.10.2:2379 cluster-health"
    )


# ---------------------------------------------------------------------------------------------
# The bundle and the whole run


def test_write_bundle_is_atomic_and_private(tmp_path: Path) -> None:
    target = tmp_path / "b.tar.gz"
    diagnose.write_bundle(target, "b", {"m/x.txt": "1", "manifest.json": "{}"}, mtime=NOW)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar.gz"]  # no temporary left
    with tarfile.open(target) as tar:
        assert tar.getnames() == ["b", "b/m", "b/m/x.txt", "b/manifest.json"]
        assert all(m.mode == (0o700 if m.isdir() else 0o600) for m in tar.getmembers())


def test_bundle_write_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot write the bundle there"):
        diagnose.write_bundle(tmp_path / "no" / "b.tar.gz", "b", {"a": "b"}, mtime=NOW)


def fake_collect(cluster: Cluster, fault: Fault) -> Callable[..., dict[str, Collected]]:
    def collect(*_: Any, progress: Any = None, **__: Any) -> dict[str, Collected]:
        collected = fault(cluster, healthy(cluster))
        for name, got in collected.items():
            if progress:
                progress(name, "done" if got.reachable else "failed", "1.0 s")
        return collected

    return collect


def members(path: Path) -> dict[str, str]:
    with tarfile.open(path) as tar:
        return {
            m.name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_diagnose_writes_every_reachable_host_and_the_manifest(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault = combine(
        unreachable("timed out connecting to 192.168.10.3:22", "node2"),
        outputs(
            "master",
            **{
                "journal__etcd": Output(
                    0, f"{stamp(NOW)} master etcd[1]: ETCD_INITIAL_CLUSTER_TOKEN={TOKEN}\n"
                ),
                "iptables_save": Output(127, "", "sh: iptables-save: not found"),
            },
        ),
    )
    monkeypatch.setattr(collection, "collect", fake_collect(cluster, fault))
    bundle = tmp_path / "diag.tar.gz"
    result = diagnose.diagnose(cluster, inventory=str(REFERENCE), output=bundle)
    assert result.bundle == bundle
    assert [(f.host, f.id) for f in result.findings] == [("node2", "host-unreachable")]
    files = members(bundle)
    assert not any(TOKEN in text for text in files.values())
    manifest = json.loads(files["diag/manifest.json"])
    assert set(manifest["hosts"]) == {"master", "node1", "node2"}
    assert manifest["hosts"]["node2"] == {
        **manifest["hosts"]["node2"],
        "reachable": False,
        "error": "timed out connecting to 192.168.10.3:22",
        "collected": ["diag/node2/error.txt"],
    }
    assert manifest["findings"] == [f.as_dict() for f in result.findings]
    assert manifest["version"] and manifest["created"] and manifest["since"] == "1h"
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    assert (
        "master: iptables-save: not available on this host (sh: iptables-save: not found)"
        in (manifest["errors"])
    )
    for host in ("master", "node1"):
        listed = manifest["hosts"][host]["collected"]
        assert set(listed) == {name for name in files if name.startswith(f"diag/{host}/")}
        for part in (
            "journal/etcd.log",
            "systemctl-status/etcd.txt",
            "commands/ip-route.txt",
            "commands/iptables-save.txt",
            "commands/disk.txt",
            "files/etc/etcd/etcd.conf",
            "commands/etcd-member-list-v2.txt",
            "commands/flannel-subnets.txt",
        ):
            assert f"diag/{host}/{part}" in files
    assert "diag/master/commands/kubectl-describe-nodes.txt" in files
    assert files["diag/master/commands/ip-route.txt"].startswith("$ ip route\n# exit 0\n")
    # One systemctl status for all of a host's units, filed per unit.
    etcd_status = files["diag/node1/systemctl-status/etcd.txt"]
    assert etcd_status.startswith("$ systemctl status --no-pager -l -n 0 -- etcd.service ")
    assert "* etcd.service - etcd\n   Active: active (running)\n" in etcd_status
    assert "kubelet" not in etcd_status.partition("\n# exit 0\n")[2]
    assert files["diag/node2/error.txt"] == "timed out connecting to 192.168.10.3:22\n"
    assert "1. ERROR node2 ssh [host-unreachable]" in files["diag/findings.txt"]


def test_the_manifest_and_findings_are_redacted_too(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An SSH error quoting a proxy URL with credentials: it lands in the manifest, the
    # finding's evidence and findings.txt.
    error = (
        'cannot reach 192.168.10.3:22 through the ProxyCommand: http://ops:hunter22@proxy:3128 "x"'
    )
    fault = unreachable(error, "node2")
    monkeypatch.setattr(collection, "collect", fake_collect(cluster, fault))
    bundle = tmp_path / "diag.tar.gz"
    result = diagnose.diagnose(cluster, inventory=str(REFERENCE), output=bundle)
    files = members(bundle)
    assert not any("hunter22" in text for text in files.values())
    assert not any("hunter22" in f.evidence for f in result.findings)
    manifest = json.loads(files["diag/manifest.json"])  # still a valid document
    assert manifest["hosts"]["node2"]["error"] == error.replace("hunter22", "<redacted>")


def test_bundle_holds_the_drift_diff(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault = edited("node1", "/etc/kubernetes/proxy", lambda t: t + "# by hand\n")
    monkeypatch.setattr(collection, "collect", fake_collect(cluster, fault))
    result = diagnose.diagnose(cluster, inventory="i", output=tmp_path / "d.tar.gz")
    diff = members(result.bundle)["d/node1/drift/etc/kubernetes/proxy.diff"]
    assert diff.startswith(
        "--- rendered/node1/etc/kubernetes/proxy\n+++ node1:/etc/kubernetes/proxy"
    )
    assert "+# by hand" in diff


def test_default_bundle_name() -> None:
    when = datetime(2026, 1, 31, 10, 0, 5, tzinfo=UTC)
    assert (
        str(diagnose.default_bundle_path(when)) == "k8s-provision-diagnose-20260131T100005Z.tar.gz"
    )


# ---------------------------------------------------------------------------------------------
# Runbook and CLI


def test_runbook_has_the_clusters_real_values(cluster: Cluster) -> None:
    sections = {s.component: s for s in runbook.runbook(cluster, "inv.ini")}
    assert list(sections) == ["etcd", "flannel", "docker", "master", "nodes", "hosts", "config"]
    endpoints = "http://192.168.10.1:2379,http://192.168.10.2:2379,http://192.168.10.3:2379"
    assert f"master# ETCDCTL_API=2 etcdctl --endpoints={endpoints} cluster-health" in (
        sections["etcd"].commands
    )
    assert any("ls -la /var/lib/etcd/default.etcd/member" in c for c in sections["etcd"].commands)
    assert any(
        f"get /atomic.io/network/config   # expect {NETWORK_JSON}" in c
        for c in sections["flannel"].commands
    )
    assert (
        "node2# ip -4 addr show flannel0   # inside 172.17.0.0/16" in sections["flannel"].commands
    )
    assert "master# kubectl -s http://192.168.10.1:8080 describe node node1" in (
        sections["nodes"].commands
    )
    assert any(
        "open: 2379/tcp 2380/tcp 10250/tcp 8285/udp" in c for c in sections["hosts"].commands
    )
    assert (
        "node1# cat /etc/kubernetes/kubelet   # compare with rendered/node1/etc/kubernetes/kubelet"
        in (sections["config"].commands)
    )


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, ["diagnose", *args])


def test_cli_runbook_needs_no_ssh() -> None:
    result = run_cli(str(REFERENCE), "--runbook")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("## etcd: members healthy")
    document = json.loads(run_cli(str(REFERENCE), "--runbook", "--json").output)
    assert document["runbook"][0]["component"] == "etcd"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "soon"], "--since 'soon'"),
        (["-o", "/nonexistent-dir/b.tar.gz"], "no such directory for the bundle"),
        (["--runbook", "-o", "x.tar.gz"], "--runbook only prints commands"),
    ],
)
def test_cli_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = run_cli(str(REFERENCE), *args)
    assert result.exit_code == 2
    assert message in result.output


def test_cli_json_and_exit_codes(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collection, "collect", fake_collect(cluster, stopped("node1", "etcd")))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["diagnose", str(REFERENCE), "--json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)  # stdout is the JSON document and nothing else
    assert document["ok"] is False
    assert document["findings"][0] == {
        "host": "node1",
        "component": "etcd",
        "id": "unit-stopped",
        "severity": "error",
        "diagnosis": "etcd on node1 is stopped (inactive (dead))",
        "fix": [
            "node1# systemctl start etcd",
            "node1# systemctl enable etcd",
            "node1# systemctl status etcd --no-pager",
        ],
        "evidence": document["findings"][0]["evidence"],
    }
    bundle = Path(document["bundle"])
    # The default: in the current directory, named by the time.
    assert (tmp_path / bundle).is_file() and bundle.name.startswith("k8s-provision-diagnose-")
    assert "diagnose: 1 error; first: node1 etcd [unit-stopped]" in result.stderr

    monkeypatch.setattr(collection, "collect", fake_collect(cluster, lambda _, c: c))
    clean = CliRunner().invoke(cli, ["diagnose", str(REFERENCE), "-o", "ok.tgz"])
    assert clean.exit_code == 0, clean.stderr
    assert "diagnose: OK, no problems found on 3 hosts" in clean.stdout
    assert os.path.exists(tmp_path / "ok.tgz")


def test_cli_plain_output_names_host_component_then_fix(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collection, "collect", fake_collect(cluster, key_gone))
    result = CliRunner().invoke(cli, ["diagnose", str(REFERENCE), "-o", str(tmp_path / "b.tar.gz")])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "1. ERROR master flannel [flannel-network-key-missing]"
    assert lines[lines.index("   fix:") + 1].startswith("     master# ETCDCTL_API=2 etcdctl")
    assert "diagnose: collecting from 3 hosts over SSH" in result.stderr


def test_finding_json_shape() -> None:
    finding = Finding("h", "c", "i", "error", 1, "d", ("f",), "e")
    assert finding.as_dict() == {
        "host": "h",
        "component": "c",
        "id": "i",
        "severity": "error",
        "diagnosis": "d",
        "fix": ["f"],
        "evidence": "e",
    }


def test_every_common_placeholder_is_filled(cluster: Cluster) -> None:
    filled = diagnose.host_vars(cluster, cluster.host("node1"), inventory="inv.ini")
    assert set(filled) == set(sigfile.COMMON_VARS)
    assert filled["healthy_member"] == "master"  # another member: fixes never run on node1


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_host_text_is_never_rich_markup(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal findings are printed with rich: text from the hosts must show as is."""
    line = "etcd: exec [/usr/bin/etcd] failed: [bold]no such file[/bold]"
    monkeypatch.setattr(
        collection, "collect", fake_collect(cluster, failed_with("node1", "etcd", line))
    )
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich's console then treats the runner as a terminal
    monkeypatch.setenv("COLUMNS", "400")
    result = CliRunner().invoke(cli, ["diagnose", str(REFERENCE), "-o", str(tmp_path / "b.tar.gz")])
    shown = ANSI.sub("", result.stdout)
    assert "\x1b[" in result.stdout  # it was rich's output
    assert "[/usr/bin/etcd] failed: [bold]no such file[/bold]" in shown
