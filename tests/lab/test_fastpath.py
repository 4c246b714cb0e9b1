"""The fast path on the lab: a converged cluster matches in one SSH round per host, and each
kind of drift makes `up` hand over to site.yml, which repairs it (the next check matches).

Not here, and why: kernel settings and firewalld. The lab's hosts are debian containers: the
roles leave kernel settings to the machine that runs a container, and firewalld is managed on
redhat hosts only; the unit tests cover both kinds' comparison."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from k8s_provision import fastpath, inventory
from k8s_provision import lab as lab_api
from k8s_provision.model import Cluster
from tests.lab.helpers import cli

pytestmark = pytest.mark.lab

ETCD_V3 = "ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379"


def on(lab: lab_api.LabState, host: str, command: str) -> str:
    result = lab_api.ssh_run(host, command, config=lab.config)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def lab_cluster(converged_lab: lab_api.LabState) -> Cluster:
    return inventory.load(converged_lab.inventory)


def test_a_converged_cluster_matches_and_up_skips_site_yml(
    converged_lab: lab_api.LabState, lab_cluster: Cluster
) -> None:
    result = fastpath.check(lab_cluster)
    assert result.matches, fastpath.describe(result, shown=50)
    up = cli("up", str(converged_lab.inventory))
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-2000:]
    assert "fast path: the cluster already matches" in up.stdout
    assert "site.yml" not in up.stdout
    assert "verify: OK" in up.stdout
    plan = cli("plan", str(converged_lab.inventory))
    assert plan.returncode == 0, plan.stderr
    assert "plan: no changes" in plan.stdout


def _remove_etcd_member(lab: lab_api.LabState) -> None:
    # A replaced host: its member removed and its data gone; site.yml joins it again.
    member = on(lab, "master", f"{ETCD_V3} member list | grep ', node2, ' | cut -d, -f1")
    on(lab, "node2", "systemctl stop etcd && rm -rf /var/lib/etcd/default")
    on(lab, "master", f"{ETCD_V3} member remove {member.strip()}")


DRIFT: dict[str, tuple[Callable[[lab_api.LabState], object], str, str]] = {
    "file edited": (
        lambda lab: on(lab, "node1", "echo '# edited' >> /etc/kubernetes/proxy"),
        "node1",
        "file",
    ),
    "file removed": (lambda lab: on(lab, "node2", "rm /etc/default/flanneld"), "node2", "file"),
    # The lab hosts reach no package registry: apt reinstalls from its archive cache, where
    # the test puts the .deb this machine downloads (same release and version).
    "package removed": (
        lambda lab: on(lab, "node1", "dpkg -r --force-depends etcd-client 2>&1"),
        "node1",
        "package",
    ),
    # Restarted by hand with an edit, then (a second later, as a person would) the backup
    # moved back: the file and its record match again, the process runs the edit.
    "restarted with an edit since put back": (
        lambda lab: on(
            lab,
            "node2",
            "cp -p /etc/default/etcd /root/etcd.saved"
            " && echo ETCD_HEARTBEAT_INTERVAL=150 >> /etc/default/etcd && systemctl restart etcd"
            " && sleep 1 && mv /root/etcd.saved /etc/default/etcd",
        ),
        "node2",
        "config-freshness",
    ),
    "unit stopped": (lambda lab: on(lab, "node2", "systemctl stop etcd"), "node2", "unit"),
    "unit disabled": (
        lambda lab: on(lab, "node1", "systemctl disable etcd 2>&1"),
        "node1",
        "unit",
    ),
    "unit masked": (
        lambda lab: on(lab, "node2", "systemctl mask --now etcd 2>&1"),
        "node2",
        "unit",
    ),
    "flannel key changed": (
        lambda lab: on(
            lab,
            "master",
            "ETCDCTL_API=2 etcdctl --endpoints=http://127.0.0.1:2379 set"
            ' /atomic.io/network/config \'{"Network":"10.9.0.0/16"}\'',
        ),
        "master",
        "flannel-key",
    ),
    "etcd member missing": (_remove_etcd_member, "master", "etcd-membership"),
}


@pytest.fixture(scope="module")
def package_cache(
    converged_lab: lab_api.LabState, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """etcd-client's .deb in node1's apt archive cache, so apt can install it again."""
    where = tmp_path_factory.mktemp("deb")
    subprocess.run(
        ["apt-get", "download", "etcd-client"], cwd=where, check=True, capture_output=True
    )
    deb = next(where.glob("etcd-client_*.deb"))
    lab_api.ssh_run(
        "node1",
        f"base64 -d > /var/cache/apt/archives/{deb.name}",
        input=base64.b64encode(deb.read_bytes()).decode(),
        config=converged_lab.config,
        check=True,
    )


@pytest.mark.parametrize("case", list(DRIFT))
def test_drift_hands_over_to_site_yml_which_repairs_it(
    converged_lab: lab_api.LabState, lab_cluster: Cluster, package_cache: None, case: str
) -> None:
    drift, host, kind = DRIFT[case]
    drift(converged_lab)
    found = fastpath.check(lab_cluster)
    assert (host, kind) in {(d.host, d.kind) for d in found.differences}, found.differences
    up = cli("up", str(converged_lab.inventory))
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-2000:]
    assert "fast path: " in up.stdout and "site.yml runs on" in up.stdout
    assert "site.yml: ok" in up.stdout
    after = fastpath.check(lab_cluster)
    assert after.matches, fastpath.describe(after, shown=50)


def test_an_inventory_change_hands_over_and_is_applied(
    converged_lab: lab_api.LabState, lab_cluster: Cluster, tmp_path: Path
) -> None:
    changed = tmp_path / "inventory.ini"
    text = converged_lab.inventory.read_text()
    changed.write_text(
        text.replace("k8s_os_family=debian", "k8s_os_family=debian\nkube_log_level=2")
    )
    try:
        found = fastpath.check(inventory.load(changed))
        assert found.differing_hosts == ("master", "node1", "node2")
        assert {d.item for d in found.differences} == {"/etc/kubernetes/config"}
        up = cli("up", str(changed))
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-2000:]
        assert "--v=2" in on(converged_lab, "node1", "cat /etc/kubernetes/config")
        assert fastpath.check(inventory.load(changed)).matches
    finally:
        assert cli("up", str(converged_lab.inventory)).returncode == 0
