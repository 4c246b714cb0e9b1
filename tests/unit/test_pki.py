"""The minimal cluster PKI: what each host gets, who signs it, file modes, and that a second run
changes nothing (so copying the bundles to the hosts is idempotent)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from k8s_provision import inventory, pki

LAB = Path(__file__).parent / "data" / "lab-1.20.ini"


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_bundles_modes_and_idempotence(tmp_path: Path) -> None:
    cluster = inventory.load(LAB)
    state = pki.ensure_pki(cluster, tmp_path / "pki")
    first = files(state)
    pki.ensure_pki(cluster, state)

    assert files(state) == first
    assert {p.stat().st_mode & 0o777 for p in state.rglob("*") if p.is_file()} == {0o600}
    assert {p.stat().st_mode & 0o777 for p in [state, *state.rglob("*")] if p.is_dir()} == {0o700}
    master = {name.split("/")[-1] for name in first if name.startswith("hosts/master/")}
    assert {"apiserver.crt", "sa.key", "sa.pub", "admin.kubeconfig", "ca.crt"} <= master
    assert not any(name.startswith("kubelet") for name in master)  # master is not a node here
    node = {name.split("/")[-1] for name in first if name.startswith("hosts/node1/")}
    assert {"kubelet.kubeconfig", "kube-proxy.kubeconfig", "kubelet-server.crt"} <= node
    assert "ca.key" not in master | node and "sa.key" not in node


def test_identities_and_names(tmp_path: Path) -> None:
    cluster = inventory.load(LAB)
    state = pki.ensure_pki(cluster, tmp_path / "pki")
    ca = x509.load_pem_x509_certificate((state / "ca.crt").read_bytes())
    api = x509.load_pem_x509_certificate((state / "hosts/master/apiserver.crt").read_bytes())
    api.verify_directly_issued_by(ca)
    names = api.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {
        "192.168.10.1",
        "127.0.0.1",
        "10.254.0.1",
    }
    config = yaml.safe_load((state / "hosts/node2/kubelet.kubeconfig").read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://192.168.10.1:6443"
    cert_pem = base64.b64decode(config["users"][0]["user"]["client-certificate-data"])
    kubelet = x509.load_pem_x509_certificate(cert_pem)
    kubelet.verify_directly_issued_by(ca)
    subject = kubelet.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:node2"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"


def test_a_leaf_whose_names_changed_is_made_again(tmp_path: Path) -> None:
    state = pki.ensure_pki(inventory.load(LAB), tmp_path / "pki")
    before = (state / "hosts/master/apiserver.crt").read_bytes()
    moved = tmp_path / "moved.ini"
    moved.write_text(LAB.read_text() + "kube_service_addresses=10.96.0.0/12\n")
    pki.ensure_pki(inventory.load(moved), state)
    after = x509.load_pem_x509_certificate((state / "hosts/master/apiserver.crt").read_bytes())
    assert after.public_bytes(serialization.Encoding.PEM) != before
    names = after.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.96.0.1" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
