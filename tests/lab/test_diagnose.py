"""`diagnose` against the lab after site.yml, with faults injected on real hosts: a stopped etcd
member, a deleted and a misplaced flannel network key, a wiped etcd data dir, a member removed
from the cluster, edited and deleted configuration files, a dropping iptables rule, a
powered-off host and a wrong SSH key. Each fault must be
named with its host and signature id, and where a fix is given, the printed fix commands are
run as printed and must heal the cluster. Every test leaves the session lab as it found it."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from k8s_provision import lab as lab_api
from k8s_provision import render, verify
from k8s_provision.model import Cluster
from tests.lab import hosts

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent.parent
VENV_BIN = Path(sys.executable).parent
TOKEN = "k8s-etcd-cluster"  # the lab inventory leaves etcd_cluster_token at its default


def run_on(lab: lab_api.LabState, host: str, command: str, **kwargs: Any) -> str:
    return lab_api.ssh_run(host, command, config=lab.config, check=True, **kwargs).stdout


def wait_for(what: str, probe: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s")
        time.sleep(1)


def wait_healthy(cluster: Cluster) -> None:
    wait_for("verify passes again", lambda: verify.verify(cluster).ok)


def cli_diagnose(inventory_path: Path, bundle: Path) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [
            str(VENV_BIN / "k8s-provision"),
            "diagnose",
            str(inventory_path),
            "-o",
            str(bundle),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    document: dict[str, Any] = json.loads(result.stdout)  # stdout holds only the document
    assert document["bundle"] == str(bundle)
    return result.returncode, document


def finding(document: dict[str, Any], host: str, id_: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        f for f in document["findings"] if f["host"] == host and f["id"] == id_
    ]
    listed = [(f["host"], f["id"]) for f in document["findings"]]
    assert len(found) == 1, f"no single {id_} on {host}: {listed}"
    return found[0]


def apply_fix(lab: lab_api.LabState, fix: list[str]) -> None:
    """Run a finding's fix exactly as printed: `HOST# command` on HOST, `$ command` here."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    for line in fix:
        if line.startswith("$ "):
            result = subprocess.run(
                ["sh", "-c", line[2:]],
                capture_output=True,
                text=True,
                env=env,
                timeout=600,
                check=False,
            )
            assert result.returncode == 0, f"{line}\n{result.stdout[-2000:]}{result.stderr}"
        else:
            host, _, command = line.partition("# ")
            run_on(lab, host, command)


def bundle_members(path: Path) -> dict[str, str]:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with tarfile.open(path) as tar:
        return {
            m.name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_converged_lab_is_clean_and_bundle_covers_every_host(
    converged_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    code, document = cli_diagnose(converged_lab.inventory, tmp_path / "clean.tar.gz")
    assert (code, document["ok"], document["findings"]) == (0, True, [])
    files = bundle_members(tmp_path / "clean.tar.gz")
    manifest = json.loads(files["clean/manifest.json"])
    assert list(manifest["hosts"]) == ["master", "node1", "node2"]
    for host in cluster.hosts:
        entry = manifest["hosts"][host.name]
        assert entry["reachable"] and entry["error"] is None
        assert set(entry["collected"]) == {n for n in files if n.startswith(f"clean/{host.name}/")}
        for part in (
            "journal/etcd.log",
            "systemctl-status/etcd.txt",
            "commands/ip-addr.txt",
            "commands/ip-route.txt",
            "commands/iptables-save.txt",
            "commands/df.txt",
            "commands/free.txt",
            "commands/etcd-members.txt",
            "commands/etcd-cluster-health-v2.txt",
            "commands/etcd-endpoint-status.txt",
            "commands/flannel-subnets.txt",
        ):
            assert f"clean/{host.name}/{part}" in files, part
        for planned in render.planned_files(cluster, host):
            assert f"clean/{host.name}/files{planned.dest}" in files
    # etcdctl asked every member. Its verdict is not asserted: etcd's /health makes a quorum
    # read with a 1-s deadline, which a member can miss while every host collects at once.
    health = files["clean/node1/commands/etcd-cluster-health-v2.txt"]
    assert len(set(re.findall(r"^member (\w+) is ", health, re.MULTILINE))) == 3, health
    assert re.search(r"^cluster is (healthy|degraded)$", health, re.MULTILINE), health
    assert "/atomic.io/network/config" in files["clean/master/commands/flannel-config.txt"]
    assert "clean/master/commands/kubectl-describe-nodes.txt" in files
    # The etcd token is in every member's journal and configuration file, never in the bundle.
    assert 'ETCD_INITIAL_CLUSTER_TOKEN="<redacted>"' in files["clean/node2/files/etc/default/etcd"]
    assert not [name for name, text in files.items() if TOKEN in text]


def test_stopped_etcd_member(
    converged_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    lab = converged_lab
    run_on(lab, "node2", "systemctl stop etcd")
    try:
        code, document = cli_diagnose(lab.inventory, tmp_path / "b.tar.gz")
        assert code == 1
        stopped = finding(document, "node2", "unit-stopped")
        assert stopped["component"] == "etcd"
        assert stopped["diagnosis"] == "etcd on node2 is stopped (inactive (dead))"
        assert document["findings"][0] == stopped  # the cause, before any symptom
        apply_fix(lab, stopped["fix"][:1])
    finally:
        run_on(lab, "node2", "systemctl start etcd")
    wait_healthy(cluster)


def test_deleted_flannel_network_key(
    converged_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    lab = converged_lab
    key = f"{cluster.settings.flannel_etcd_prefix}/config"
    value = run_on(lab, "node2", f"ETCDCTL_API=2 etcdctl get {key}").strip()
    run_on(lab, "node2", f"ETCDCTL_API=2 etcdctl rm {key}")
    try:
        code, document = cli_diagnose(lab.inventory, tmp_path / "b.tar.gz")
        assert code == 1
        missing = finding(document, "master", "flannel-network-key-missing")
        assert missing["component"] == "flannel"
        assert f"mk {key} '" in missing["fix"][0]
        apply_fix(lab, missing["fix"])
        assert run_on(lab, "node1", f"ETCDCTL_API=2 etcdctl get {key}").strip() == value
    finally:
        lab_api.ssh_run("master", f"ETCDCTL_API=2 etcdctl mk {key} '{value}'", config=lab.config)
    wait_healthy(cluster)


def test_flannel_key_under_another_prefix(
    converged_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    lab = converged_lab
    key = f"{cluster.settings.flannel_etcd_prefix}/config"
    value = run_on(lab, "node1", f"ETCDCTL_API=2 etcdctl get {key}").strip()
    run_on(lab, "node1", f"ETCDCTL_API=2 etcdctl mk /coreos.com/network/config '{value}'")
    run_on(lab, "node1", f"ETCDCTL_API=2 etcdctl rm {key}")
    try:
        _, document = cli_diagnose(lab.inventory, tmp_path / "b.tar.gz")
        elsewhere = finding(document, "master", "flannel-key-other-prefix")
        assert "at /coreos.com/network/config" in elsewhere["diagnosis"]
        assert "flannel-network-key-missing" not in {f["id"] for f in document["findings"]}
    finally:
        lab_api.ssh_run("node1", f"ETCDCTL_API=2 etcdctl mk {key} '{value}'", config=lab.config)
        run_on(lab, "node1", "ETCDCTL_API=2 etcdctl rm --recursive /coreos.com")
    wait_healthy(cluster)


def test_wiped_etcd_data_dir_is_lost_data_and_the_fix_heals_it(
    converged_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    lab = converged_lab
    data_dir = render.host_context(cluster, "node1")["etcd_data_dir"]
    run_on(lab, "node1", f"systemctl stop etcd; rm -rf {data_dir}")
    lab_api.ssh_run("node1", "systemctl start etcd", config=lab.config)  # fails, as it should
    code, document = cli_diagnose(lab.inventory, tmp_path / "b.tar.gz")
    assert code == 1
    lost = finding(document, "node1", "etcd-member-lost-data")
    assert lost["component"] == "etcd"
    assert "has already been bootstrapped" in lost["evidence"]
    assert document["findings"][0] == lost
    # The generic "unit failed" is explained by the specific finding, not repeated.
    assert {f["id"] for f in document["findings"] if f["host"] == "node1"} == {
        "etcd-member-lost-data"
    }
    apply_fix(lab, lost["fix"])  # member remove/add on a healthy member, start, then `up`
    wait_healthy(cluster)
    code, after = cli_diagnose(lab.inventory, tmp_path / "after.tar.gz")
    assert (code, after["findings"]) == (0, [])


def test_member_removed_from_the_cluster_and_the_fix_heals_it(
    converged_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    lab = converged_lab
    members = run_on(lab, "node1", "ETCDCTL_API=3 etcdctl member list")
    member_id = next(line.split(", ")[0] for line in members.splitlines() if ", master, " in line)
    # etcd refuses reconfiguration ("unhealthy cluster") until every member has been connected
    # for a few seconds, as after an earlier test healed one.
    wait_for(
        "etcd accepts the member removal",
        lambda: (
            lab_api.ssh_run(
                "node1", f"ETCDCTL_API=3 etcdctl member remove {member_id}", config=lab.config
            ).returncode
            == 0
        ),
    )
    wait_for(
        "etcd on master stops after its removal",
        lambda: (
            lab_api.ssh_run("master", "systemctl is-active etcd", config=lab.config).stdout
            != "active\n"
        ),
    )
    code, document = cli_diagnose(lab.inventory, tmp_path / "b.tar.gz")
    assert code == 1
    removed = finding(document, "master", "etcd-member-removed")
    assert "etcdctl member list on node1, node2 does not list master" in removed["evidence"]
    assert [(f["host"], f["id"]) for f in document["findings"]] == [
        ("master", "etcd-member-removed")
    ]
    apply_fix(lab, removed["fix"])
    wait_healthy(cluster)
    code, after = cli_diagnose(lab.inventory, tmp_path / "after.tar.gz")
    assert (code, after["findings"]) == (0, [])


def test_edited_and_deleted_configuration_files(
    converged_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    lab = converged_lab
    flanneld = render.host_context(cluster, "master")["flanneld_config_path"]
    rendered = {h.name: render.render_host(cluster, h.name) for h in cluster.hosts}
    prefix = cluster.settings.flannel_etcd_prefix
    run_on(
        lab, "master", f"sed -i 's|^FLANNEL_ETCD_PREFIX=.*|FLANNEL_ETCD_PREFIX=\"/x\"|' {flanneld}"
    )
    run_on(lab, "node2", "rm /etc/kubernetes/proxy")
    try:
        code, document = cli_diagnose(lab.inventory, tmp_path / "b.tar.gz")
        assert code == 1
        drift = finding(document, "master", "config-drift")
        assert drift["component"] == "flanneld"
        assert f"{flanneld} on master differs" in drift["diagnosis"]
        assert f'-FLANNEL_ETCD_PREFIX="{prefix}"' in drift["evidence"]
        assert '+FLANNEL_ETCD_PREFIX="/x"' in drift["evidence"]
        assert "$ k8s-provision up" in drift["fix"][-1] and "--limit master" in drift["fix"][-1]
        missing = finding(document, "node2", "config-missing")
        assert (missing["component"], missing["evidence"]) == (
            "kube-proxy",
            "/etc/kubernetes/proxy: No such file or directory",
        )
        diff = bundle_members(tmp_path / "b.tar.gz")[f"b/master/drift{flanneld}.diff"]
        assert diff.startswith(f"--- rendered/master{flanneld}\n+++ master:{flanneld}\n")
        assert {(f["host"], f["id"]) for f in document["findings"]} == {
            ("master", "config-drift"),
            ("node2", "config-missing"),
        }
    finally:
        run_on(lab, "master", f"cat > {flanneld}", input=rendered["master"][flanneld])
        proxy = rendered["node2"]["/etc/kubernetes/proxy"]
        run_on(lab, "node2", "cat > /etc/kubernetes/proxy", input=proxy)


def test_iptables_rule_dropping_the_peer_port(
    converged_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    lab = converged_lab
    port = cluster.settings.etcd_peer_port
    run_on(lab, "node2", f"iptables -A INPUT -p tcp --dport {port} -j DROP")
    try:
        _, document = cli_diagnose(lab.inventory, tmp_path / "b.tar.gz")
        blocked = finding(document, "node2", "iptables-blocks-ports")
        assert blocked["component"] == "firewall"
        assert f"drops {port}/tcp" in blocked["diagnosis"]
        apply_fix(lab, blocked["fix"][:1])
        assert f"--dport {port}" not in run_on(lab, "node2", "iptables-save")
    finally:
        lab_api.ssh_run(
            "node2", f"iptables -D INPUT -p tcp --dport {port} -j DROP", config=lab.config
        )
    wait_healthy(cluster)


def test_wrong_ssh_key_is_an_authentication_failure_for_that_host(
    converged_lab: lab_api.LabState, tmp_path: Path
) -> None:
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    text = converged_lab.inventory.read_text(encoding="utf-8")
    line = "node2 ansible_host=192.168.10.3"
    assert line in text
    copied = tmp_path / "inventory.ini"
    copied.write_text(text.replace(line, f"{line} ansible_ssh_private_key_file={key}"), "utf-8")
    code, document = cli_diagnose(copied, tmp_path / "b.tar.gz")
    assert code == 1
    auth = finding(document, "node2", "ssh-auth-failed")
    assert "192.168.10.3" in auth["diagnosis"] and str(key) in auth["diagnosis"]
    assert [(f["host"], f["id"]) for f in document["findings"]] == [("node2", "ssh-auth-failed")]
    manifest = json.loads(bundle_members(tmp_path / "b.tar.gz")["b/manifest.json"])
    assert manifest["hosts"]["node2"]["reachable"] is False
    assert manifest["hosts"]["master"]["reachable"] and manifest["hosts"]["node1"]["reachable"]


def test_powered_off_host_is_unreachable_and_the_others_are_collected(
    spare_lab_config: lab_api.LabConfig, tmp_path: Path
) -> None:
    state = lab_api.up(nodes=2, config=spare_lab_config, kubernetes=False, security="classic")
    hosts.power_off("node1", config=spare_lab_config)
    code, document = cli_diagnose(state.inventory, tmp_path / "b.tar.gz")
    assert code == 1
    down = finding(document, "node1", "host-unreachable")
    assert down["component"] == "ssh" and "192.168.10.2" in down["diagnosis"]
    assert document["findings"][0] == down
    files = bundle_members(tmp_path / "b.tar.gz")
    manifest = json.loads(files["b/manifest.json"])
    assert manifest["hosts"]["node1"]["reachable"] is False
    assert manifest["hosts"]["node1"]["collected"] == ["b/node1/error.txt"]
    assert manifest["hosts"]["node1"]["error"] == files["b/node1/error.txt"].strip()
    assert any(f["id"] == "host-unreachable" for f in manifest["findings"])
    for host in ("master", "node2"):
        assert manifest["hosts"][host]["reachable"]
        assert f"b/{host}/commands/ip-addr.txt" in files
        assert f"b/{host}/journal/etcd.log" in files
