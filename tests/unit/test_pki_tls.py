"""The TLS profile's PKI with real cryptography objects: two CAs, who gets which certificate
with which names and usages, owners and modes on the hosts, the state directory's modes, and
that a lost or foreign CA stops instead of being made again."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k8s_provision import facts, inventory, pki
from k8s_provision.model import Cluster

DATA = Path(__file__).parent / "data"
TLS = DATA / "reference-tls.ini"


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def cn(c: x509.Certificate) -> str:
    return str(c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def org(c: x509.Certificate) -> str | None:
    values = c.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else None


def sans(c: x509.Certificate) -> set[str]:
    names = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n) for n in names.get_values_for_type(x509.DNSName)} | {
        str(n) for n in names.get_values_for_type(x509.IPAddress)
    }


def usages(c: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cluster, Path]:
    cluster = inventory.load(TLS)
    return cluster, pki.ensure_pki(cluster, tmp_path_factory.mktemp("tls") / "pki")


def test_two_cas_and_who_signs_what(made: tuple[Cluster, Path]) -> None:
    _, state = made
    ca, etcd_ca = cert(state / "ca.crt"), cert(state / "etcd-ca.crt")
    assert ca.subject != etcd_ca.subject and ca.public_key() != etcd_ca.public_key()
    for name in ("etcd-member", "etcd-client", "flannel-etcd-client", "apiserver-etcd-client"):
        leaf = cert(state / "hosts/master" / f"{name}.crt")
        leaf.verify_directly_issued_by(etcd_ca)
        with pytest.raises((ValueError, InvalidSignature)):
            leaf.verify_directly_issued_by(ca)
    cert(state / "hosts/master/apiserver.crt").verify_directly_issued_by(ca)


def test_etcd_member_certificates(made: tuple[Cluster, Path]) -> None:
    cluster, state = made
    for host in cluster.hosts:
        member = cert(state / "hosts" / host.name / "etcd-member.crt")
        assert sans(member) == {host.ip, host.name, "127.0.0.1", "localhost"}
        # Peers dial each other with the same certificate they serve with.
        assert usages(member) == {
            ExtendedKeyUsageOID.SERVER_AUTH,
            ExtendedKeyUsageOID.CLIENT_AUTH,
        }
    tool = cert(state / "hosts/node1/etcd-client.crt")
    assert cn(tool) == "k8s-provision" and usages(tool) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cn(cert(state / "hosts/node2/flannel-etcd-client.crt")) == "flanneld"


def test_apiserver_serving_names(made: tuple[Cluster, Path]) -> None:
    _, state = made
    api = cert(state / "hosts/master/apiserver.crt")
    assert sans(api) == {
        "192.168.10.1",
        "master",
        "10.254.0.1",
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    }
    assert usages(api) == {ExtendedKeyUsageOID.SERVER_AUTH}


def test_kubernetes_identities_as_kubeconfigs(made: tuple[Cluster, Path]) -> None:
    _, state = made

    def identity(path: Path) -> tuple[str, str | None, str]:
        config = yaml.safe_load(path.read_text())
        data = config["users"][0]["user"]["client-certificate-data"]
        leaf = x509.load_pem_x509_certificate(base64.b64decode(data))
        leaf.verify_directly_issued_by(cert(state / "ca.crt"))
        return cn(leaf), org(leaf), config["clusters"][0]["cluster"]["server"]

    url = "https://192.168.10.1:6443"
    assert identity(state / "hosts/master/admin.kubeconfig") == (
        "kubernetes-admin",
        "system:masters",
        url,
    )
    assert identity(state / "hosts/master/controller-manager.kubeconfig")[:2] == (
        "system:kube-controller-manager",
        None,
    )
    assert identity(state / "hosts/master/scheduler.kubeconfig")[0] == "system:kube-scheduler"
    assert identity(state / "hosts/node1/kubelet.kubeconfig") == (
        "system:node:node1",
        "system:nodes",
        url,
    )
    assert identity(state / "hosts/node2/kube-proxy.kubeconfig")[0] == "system:kube-proxy"


def test_state_directory_modes_and_a_second_run_changes_nothing(
    made: tuple[Cluster, Path],
) -> None:
    cluster, state = made
    before = {p: p.read_bytes() for p in state.rglob("*") if p.is_file()}
    pki.ensure_pki(cluster, state)
    assert {p: p.read_bytes() for p in state.rglob("*") if p.is_file()} == before
    assert {p.stat().st_mode & 0o777 for p in before} == {0o600}
    assert {p.stat().st_mode & 0o777 for p in [state, *state.rglob("*")] if p.is_dir()} == {0o700}


def test_host_files_owners_modes_and_sources(made: tuple[Cluster, Path]) -> None:
    cluster, state = made
    master = {f.dest: f for f in pki.host_files(cluster, cluster.host("master"))}
    assert master["/etc/etcd/pki/etcd-member.key"].owner == "etcd"
    assert master["/etc/etcd/pki/etcd-member.key"].mode == "0600"
    assert master["/etc/etcd/pki/etcd-member.crt"].mode == "0644"
    assert master["/etc/kubernetes/pki/apiserver.key"].owner == "kube"
    assert master["/etc/kubernetes/pki/sa.key"].owner == "kube"
    assert master["/etc/kubernetes/pki/admin.kubeconfig"].owner == "root"
    assert master["/etc/kubernetes/pki/flannel-etcd-client.key"].component == "flannel"
    node = {f.dest: f for f in pki.host_files(cluster, cluster.host("node1"))}
    assert node["/etc/kubernetes/pki/kubelet.kubeconfig"].mode == "0600"
    assert "/etc/kubernetes/pki/sa.key" not in node
    # A key never ships to a host that does not run the daemon reading it.
    assert not any("apiserver" in dest for dest in node)
    for host in cluster.hosts:
        for f in pki.host_files(cluster, host):
            assert (state / f.src).is_file(), f.src
            assert f.secret == f.dest.endswith((".key", ".kubeconfig"))
    classic = inventory.load(DATA.parent.parent.parent / "inventories" / "reference.ini")
    assert pki.host_files(classic, classic.master) == []


def test_pki_state_dir_is_per_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    one = facts.pki_state_dir(inventory.load(TLS))
    other = tmp_path / "other.ini"
    other.write_text(TLS.read_text() + "etcd_cluster_token=second\n")
    assert one.parent.parent == tmp_path / "k8s-provision" / "clusters"
    assert one.parent.name.startswith("master-")
    assert facts.pki_state_dir(inventory.load(other)) != one


def test_a_lost_ca_key_is_an_error_with_the_way_out(made: tuple[Cluster, Path]) -> None:
    cluster, state = made
    copy = state.parent / "lost-key"
    shutil.copytree(state, copy)
    (copy / "etcd-ca.key").unlink()
    (copy / "hosts/node1/etcd-member.crt").unlink()  # something must be signed again
    with pytest.raises(pki.PkiError) as err:
        pki.ensure_pki(cluster, copy)
    assert "etcd-ca.key: missing" in err.value.message
    assert "restore etcd-ca.key" in str(err.value) and "move" in str(err.value)
    assert not (copy / "etcd-ca.key").exists()  # never silently made again


def test_a_lost_ca_with_leaves_left_is_an_error(made: tuple[Cluster, Path]) -> None:
    cluster, state = made
    copy = state.parent / "lost-ca"
    shutil.copytree(state, copy)
    (copy / "ca.crt").unlink()
    (copy / "ca.key").unlink()
    with pytest.raises(pki.PkiError, match="missing while certificates it signed exist"):
        pki.ensure_pki(cluster, copy)
    assert not (copy / "ca.crt").exists()


def test_a_leaf_of_a_foreign_ca_is_an_error(made: tuple[Cluster, Path], tmp_path: Path) -> None:
    cluster, state = made
    foreign = pki.ensure_pki(cluster, tmp_path / "foreign")
    copy = state.parent / "mixed"
    shutil.copytree(state, copy)
    shutil.copy(foreign / "hosts/node2/etcd-member.crt", copy / "hosts/node2/etcd-member.crt")
    with pytest.raises(pki.PkiError, match=r"not signed by .*etcd-ca\.crt"):
        pki.ensure_pki(cluster, copy)


def test_secrets_never_reach_an_error_message(made: tuple[Cluster, Path]) -> None:
    cluster, state = made
    copy = state.parent / "secret-check"
    shutil.copytree(state, copy)
    (copy / "ca.key").unlink()
    (copy / "hosts/master/apiserver.crt").unlink()
    with pytest.raises(pki.PkiError) as err:
        pki.ensure_pki(cluster, copy)
    assert "PRIVATE KEY" not in str(err.value) and "BEGIN" not in str(err.value)


def test_master_files_only_where_the_master_services_run(tmp_path: Path) -> None:
    lab = tmp_path / "lab.ini"
    lab.write_text((DATA / "reference-tls.ini").read_text() + "k8s_os_family=debian\n")
    cluster = inventory.load(lab)  # debian without binaries: no Kubernetes services, no kube user
    components = {f.component for f in pki.host_files(cluster, cluster.host("master"))}
    assert components == {"etcd", "flannel"}


def test_renew_signs_every_leaf_again_with_the_same_keys_and_cas(tmp_path: Path) -> None:
    path = tmp_path / "tls.ini"
    path.write_text(TLS.read_text() + f"kube_pki_source={tmp_path}/pki\n")
    cluster = inventory.load(path)
    state = pki.ensure_pki(cluster, tmp_path / "pki")
    before = {p: p.read_bytes() for p in state.rglob("*") if p.is_file()}
    from k8s_provision.pki.renew import renew_leaves

    renew_leaves(cluster)
    after = {p: p.read_bytes() for p in state.rglob("*") if p.is_file()}
    changed = {p.name for p in before if before[p] != after[p]}
    assert all(name.endswith((".crt", ".kubeconfig")) for name in changed)
    assert "etcd-member.crt" in changed and "admin.kubeconfig" in changed
    assert not {"ca.crt", "etcd-ca.crt", "ca.key", "etcd-ca.key", "sa.key"} & changed
    assert not any(name.endswith(".key") for name in changed)
    old = x509.load_pem_x509_certificate(before[state / "hosts/node1/etcd-member.crt"])
    new = cert(state / "hosts/node1/etcd-member.crt")
    assert new.serial_number != old.serial_number and new.public_key() == old.public_key()
    new.verify_directly_issued_by(cert(state / "etcd-ca.crt"))
    pki.ensure_pki(cluster, state)  # an ordinary run keeps the renewed set
    assert {p: p.read_bytes() for p in state.rglob("*") if p.is_file()} == after
