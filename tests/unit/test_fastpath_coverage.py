"""Nothing site.yml manages escapes the fingerprint: every task of its roles that changes a
host maps to a fingerprint kind on some layout (redhat with firewalld open or disabled,
debian, in a container or not), and what the model plans (files, units) is in it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from k8s_provision import facts, inventory
from k8s_provision.fastpath import playbook
from k8s_provision.fastpath.expected import KINDS, Covered, _Reader, expected
from k8s_provision.fastpath.playbook import Task, Variables
from k8s_provision.model import Cluster
from k8s_provision.render import planned_files

REPO = Path(__file__).resolve().parent.parent.parent
REFERENCE = REPO / "inventories" / "reference.ini"


def layouts(tmp: Path) -> list[Cluster]:
    text = REFERENCE.read_text()
    variants = {
        "reference": text,
        "disable": text.replace("firewall_mode=open", "firewall_mode=disable"),
        "debian": text.replace("k8s_os_family=redhat", "k8s_os_family=debian"),
    }
    # The lab's Kubernetes 1.20 layout: binaries on the hosts, certificates copied from a PKI
    # directory on the controller (one file per host stands in for the bundle).
    pki = tmp / "pki"
    for host in ("master", "node1", "node2"):
        (pki / "hosts" / host).mkdir(parents=True)
        (pki / "hosts" / host / "ca.crt").write_text(f"certificate of {host}\n")
    variants["lab"] = (REPO / "tests" / "unit" / "data" / "lab-1.20.ini").read_text() + (
        f"kube_pki_source={pki}\nkube_binaries_provided=true\n"
    )
    # The TLS layout: the certificates role copies each host's PKI files, made here.
    variants["tls"] = text.replace("k8s_security=classic", f"kube_pki_source={tmp / 'tls-pki'}")
    clusters = []
    for name, content in variants.items():
        path = tmp / f"{name}.ini"
        path.write_text(content)
        clusters.append(inventory.load(path))
    return clusters


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> list[Cluster]:
    return layouts(tmp_path_factory.mktemp("layouts"))


def all_state_changing_tasks() -> set[tuple[str, str]]:
    tasks = set()
    for play in playbook.plays():
        for role in play.roles:
            tasks |= {(t.source, t.name) for t in playbook.role_tasks(role) if t.changes_state}
    return tasks


def test_every_state_changing_task_maps_to_a_fingerprint_kind(clusters: list[Cluster]) -> None:
    covered: set[Covered] = set()
    for cluster in clusters:
        for host in cluster.hosts:
            for container in (False, True):
                covered |= set(expected(cluster, host, in_container=container).coverage)
    assert {c.kind for c in covered} <= set(KINDS)
    missing = all_state_changing_tasks() - {(c.source, c.task) for c in covered}
    assert missing == set(), f"site.yml tasks the fingerprint does not cover: {missing}"


def test_the_walk_sees_every_kind_of_module_the_roles_use() -> None:
    modules = {
        t.module
        for play in playbook.plays()
        for role in play.roles
        for t in playbook.role_tasks(role)
        if t.changes_state
    }
    # A module outside this set is new: teach expected.py what it changes, then add it here.
    assert modules == {
        "blockinfile",
        "command",
        "copy",
        "file",
        "hostname",
        "package",
        "raw",
        "replace",
        "systemd_service",
        "template",
        "uri",
        "yum_repository",
    }


def test_what_the_model_plans_is_in_the_fingerprint(clusters: list[Cluster]) -> None:
    reference = clusters[0]
    for host in reference.hosts:
        spec = expected(reference, host)
        assert {f.dest for f in planned_files(reference, host)} <= {f.path for f in spec.files}
        assert [u.name for u in spec.units] == list(facts.host_units(host))
        assert set(spec.restarts) == set(facts.host_units(host)) - {"docker"}


def test_a_task_the_fingerprint_cannot_place_fails_loudly(clusters: list[Cluster]) -> None:
    cluster = clusters[0]
    host = cluster.host("node1")
    task = Task(
        role="prerequisites",
        source="roles/prerequisites/tasks/main.yml",
        name="Edit a file line by line",
        module="lineinfile",
        args={"path": "/etc/example", "line": "x"},
        data={},
        conditions=(),
    )
    reader = _Reader(cluster, host, in_container=False)
    with pytest.raises(ValueError, match="not in the fingerprint"):
        reader.task(Variables(("prerequisites",), reader.k8s), task, [])


def test_the_fingerprint_covers_the_certificates_of_the_tls_layout(tmp_path: Path) -> None:
    path = tmp_path / "tls.ini"
    pki_dir = tmp_path / "pki"
    path.write_text(
        REFERENCE.read_text().replace("k8s_security=classic", f"kube_pki_source={pki_dir}")
    )
    cluster = inventory.load(path)
    files = {f.path: f for f in expected(cluster, cluster.host("master")).files}
    key = files["/etc/etcd/pki/etcd-member.key"]
    assert (key.owner, key.group, key.mode) == ("etcd", "etcd", "600")
    made = (pki_dir / "hosts" / "master" / "etcd-member.key").read_bytes()
    assert key.sha256 == hashlib.sha256(made).hexdigest()
    assert files["/etc/kubernetes/pki/apiserver.key"].owner == "kube"
    assert files["/etc/kubernetes/pki/etcd-ca.crt"].mode == "644"
    assert "/etc/kubernetes/abac-policy.jsonl" in files
    node = {f.path for f in expected(cluster, cluster.host("node1")).files}
    assert "/etc/kubernetes/pki/kubelet.kubeconfig" in node
    assert "/etc/kubernetes/pki/apiserver.key" not in node
