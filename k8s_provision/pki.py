"""A minimal cluster PKI for Kubernetes versions without an insecure port (1.20 here).

One cluster CA signs: the API server's serving certificate, its kubelet client certificate, and
one client certificate per component identity (admin, controller-manager, scheduler, each
kubelet, kube-proxy), written as kubeconfig files with the certificate embedded. A separate
key pair signs service account tokens.

Layout of the state directory (0700; every file 0600):

    ca.crt ca.key sa.key sa.pub          the cluster's long-lived material, made once
    hosts/<host>/<file>                  exactly what that host gets in /etc/kubernetes/pki

Certificates are made once and kept: a second run changes nothing, so copying a host's bundle
is idempotent. A leaf whose subject or names no longer match the cluster is made again.
A later TLS issue generalises this (etcd peer/client certificates, rotation, external CAs);
the entry point stays `ensure_pki(cluster, state_dir)`.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k8s_provision.files import atomic_write
from k8s_provision.model import Cluster

# Where the files land on the hosts; the templates name the same paths.
HOST_PKI_DIR = "/etc/kubernetes/pki"
CA_NAME = "k8s-provision cluster CA"
_CA_DAYS = 3650
_LEAF_DAYS = 825
_KEY_BITS = 2048


@dataclass(frozen=True)
class Leaf:
    """One certificate a host gets: file stem, subject, and whether it serves or is a client."""

    stem: str
    common_name: str
    organization: str | None = None
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    server: bool = False
    kubeconfig: bool = False


def host_leaves(cluster: Cluster, host_name: str) -> list[Leaf]:
    """The certificates host `host_name` needs, by its roles."""
    host = cluster.host(host_name)
    leaves: list[Leaf] = []
    if host.is_master:
        service_ip = str(
            next(ipaddress.ip_network(cluster.settings.kube_service_addresses).hosts())
        )
        leaves += [
            Leaf(
                "apiserver",
                "kube-apiserver",
                dns_names=(
                    host.name,
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    f"kubernetes.default.svc.{cluster.settings.kube_cluster_domain}",
                ),
                ip_addresses=tuple(dict.fromkeys((host.ip, "127.0.0.1", service_ip))),
                server=True,
            ),
            Leaf("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
            Leaf("admin", "kubernetes-admin", "system:masters", kubeconfig=True),
            Leaf("controller-manager", "system:kube-controller-manager", kubeconfig=True),
            Leaf("scheduler", "system:kube-scheduler", kubeconfig=True),
        ]
    if host.is_node:
        leaves += [
            Leaf("kubelet", f"system:node:{host.kube_node_name}", "system:nodes", kubeconfig=True),
            Leaf(
                "kubelet-server",
                host.kube_node_name,
                dns_names=(host.name, host.kube_node_name),
                ip_addresses=(host.ip,),
                server=True,
            ),
            Leaf("kube-proxy", "system:kube-proxy", kubeconfig=True),
        ]
    return leaves


def api_server_url(cluster: Cluster) -> str:
    return f"https://{cluster.master.ip}:{cluster.settings.kube_api_port}"


def ensure_pki(cluster: Cluster, state_dir: Path) -> Path:
    """Make whatever is missing of the cluster's PKI under `state_dir`; returns `state_dir`."""
    _private_dir(state_dir)
    ca_key = _ensure_key(state_dir / "ca.key")
    ca_cert = _ensure_ca(state_dir / "ca.crt", ca_key)
    sa_key = _ensure_key(state_dir / "sa.key")
    _write(state_dir / "sa.pub", _public_pem(sa_key))
    for host in cluster.hosts:
        if not (host.is_master or host.is_node):
            continue
        out = state_dir / "hosts" / host.name
        _private_dir(out.parent)
        _private_dir(out)
        _write(out / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM))
        if host.is_master:
            _write(out / "sa.key", _private_pem(sa_key))
            _write(out / "sa.pub", _public_pem(sa_key))
        for leaf in host_leaves(cluster, host.name):
            _ensure_leaf(out, leaf, ca_cert, ca_key, api_server_url(cluster))
    return state_dir


def kubeconfig_text(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, user: str) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubernetes",
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(cert_pem),
                    "client-key-data": b64(key_pem),
                },
            }
        ],
        "contexts": [{"name": "default", "context": {"cluster": "kubernetes", "user": user}}],
        "current-context": "default",
    }
    return yaml.safe_dump(config, sort_keys=False)


def _ensure_leaf(
    out: Path, leaf: Leaf, ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey, server: str
) -> None:
    cert_path, key_path = out / f"{leaf.stem}.crt", out / f"{leaf.stem}.key"
    key = _ensure_key(key_path)
    current = _load_cert(cert_path)
    if current is None or not _matches(current, leaf, ca_cert):
        current = _issue(leaf, key, ca_cert, ca_key)
        _write(cert_path, current.public_bytes(serialization.Encoding.PEM), replace=True)
    if leaf.kubeconfig:
        text = kubeconfig_text(
            server,
            ca_cert.public_bytes(serialization.Encoding.PEM),
            current.public_bytes(serialization.Encoding.PEM),
            _private_pem(key),
            leaf.common_name,
        )
        _write(out / f"{leaf.stem}.kubeconfig", text.encode(), replace=True)


def _issue(
    leaf: Leaf, key: rsa.RSAPrivateKey, ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if leaf.server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(leaf.common_name, leaf.organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    names = _alt_names(leaf.dns_names, leaf.ip_addresses)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _matches(cert: x509.Certificate, leaf: Leaf, ca_cert: x509.Certificate) -> bool:
    """Same issuer, subject and names, and not about to expire: keep it."""
    if cert.issuer != ca_cert.subject or cert.subject != _subject(
        leaf.common_name, leaf.organization
    ):
        return False
    if cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) < datetime.timedelta(days=30):
        return False
    try:
        current = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        have = set(current)
    except x509.ExtensionNotFound:
        have = set()
    return have == set(_alt_names(leaf.dns_names, leaf.ip_addresses))


def _alt_names(dns_names: Sequence[str], ips: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(dns_names)]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    return names


def _subject(common_name: str, organization: str | None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _ensure_ca(path: Path, key: rsa.RSAPrivateKey) -> x509.Certificate:
    existing = _load_cert(path)
    if existing is not None:
        return existing
    now = datetime.datetime.now(datetime.UTC)
    name = _subject(CA_NAME, None)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(path, cert.public_bytes(serialization.Encoding.PEM))
    return cert


def _ensure_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} is not an RSA private key")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
    _write(path, _private_pem(key))
    return key


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        return None


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _write(path: Path, data: bytes, *, replace: bool = False) -> None:
    """Write 0600 from the first byte (never briefly world-readable); leave equal files alone."""
    if path.exists() and (not replace or path.read_bytes() == data):
        return
    atomic_write(path, data, mode=0o600)
