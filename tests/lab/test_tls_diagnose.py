"""`diagnose` names each TLS fault with its host, on the TLS session lab (`tls_lab`:
k8s_security tls, etcd only): a key its daemon cannot read, an expired client certificate, a
certificate of another CA, a member that trusts another CA, a member certificate without the
address its peers dial, a client without a certificate, and a plaintext client. The faults are
made on real hosts against real etcd 3.4; the certificates for them are made here with
`cryptography`. Every test heals what it broke."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k8s_provision import inventory, verify
from k8s_provision import lab as lab_api
from k8s_provision.model import Cluster
from tests.lab.helpers import cli, explain
from tests.lab.test_diagnose import cli_diagnose, finding, run_on, wait_for

pytestmark = pytest.mark.lab

IPS = {"master": "192.168.10.1", "node1": "192.168.10.2", "node2": "192.168.10.3"}
MASTER = "--endpoints=https://192.168.10.1:2379"
PKI = "/etc/etcd/pki"


def up(inventory_path: Path, *args: str) -> None:
    result = cli("up", str(inventory_path), *args)
    assert result.returncode == 0, explain(result)


@pytest.fixture(scope="module")
def cluster(tls_lab: lab_api.LabState) -> Cluster:
    return inventory.load(tls_lab.inventory)


def healthy(cluster: Cluster) -> None:
    wait_for("verify passes again", lambda: verify.verify(cluster).ok, timeout=120)


def _pem(data: x509.Certificate | rsa.RSAPrivateKey) -> str:
    if isinstance(data, x509.Certificate):
        return data.public_bytes(serialization.Encoding.PEM).decode()
    return data.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def certificate(
    name: str,
    key: rsa.RSAPrivateKey,
    signer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None,
    *,
    days: tuple[int, int] = (-1, 30),
    ips: tuple[str, ...] = (),
    ca: bool = False,
) -> x509.Certificate:
    """A certificate for `name`, valid from/until the given days from now, signed by `signer`
    (self-signed when None); with `ips` a server and client certificate for them."""
    now = datetime.datetime.now(datetime.UTC)
    who = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = signer if signer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(who)
        .issuer_name(issuer_cert.subject if issuer_cert else who)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if ips:
        names = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def etcd_ca(lab: lab_api.LabState) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    pki = lab.config.pki_dir
    cert = x509.load_pem_x509_certificate((pki / "etcd-ca.crt").read_bytes())
    key = serialization.load_pem_private_key((pki / "etcd-ca.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return cert, key


def put_files(lab: lab_api.LabState, host: str, files: dict[str, str]) -> None:
    for path, text in files.items():
        run_on(lab, host, f"umask 077; cat > {path}", input=text)


def restart_with(
    lab: lab_api.LabState, host: str, path: str, pem: str, owner: str, seen_on: str, text: str
) -> None:
    """Put certificate `pem` at `path` on `host` (owned by `owner`), restart its etcd, and wait
    until the etcd journal of `seen_on` shows `text`."""
    put_files(lab, host, {path: pem})
    restart = f"chown {owner}:{owner} {path}; chmod 644 {path}; systemctl restart --no-block etcd"
    run_on(lab, host, restart)
    wait_for(
        f"{seen_on}'s etcd logs {text!r}",
        lambda: text in run_on(lab, seen_on, "journalctl -u etcd --since -2min --no-pager"),
    )


def client_attempt(lab: lab_api.LabState, host: str, args: str) -> None:
    """An etcdctl call from `host` to the master that etcd must refuse."""
    result = lab_api.ssh_run(
        host,
        f"ETCDCTL_API=3 etcdctl {args} --dial-timeout=3s --command-timeout=3s endpoint health",
        config=lab.config,
    )
    assert result.returncode != 0, result.stdout


def test_a_key_its_daemon_cannot_read(
    tls_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    run_on(tls_lab, "node1", f"chown root:root {PKI}/etcd-member.key")
    run_on(tls_lab, "node1", "systemctl restart etcd || true")
    code, document = cli_diagnose(tls_lab.inventory, tmp_path / "b.tar.gz")
    assert code == 1
    found = finding(document, "node1", "tls-key-unreadable")
    assert f"{PKI}/etcd-member.key" in found["diagnosis"]
    up(tls_lab.inventory, "--limit", "node1")
    healthy(cluster)


def test_an_expired_client_certificate(
    tls_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = certificate("k8s-provision-expired", key, etcd_ca(tls_lab), days=(-30, -1))
    put_files(tls_lab, "node2", {"/tmp/old.crt": _pem(cert), "/tmp/old.key": _pem(key)})
    client_attempt(
        tls_lab,
        "node2",
        f"--cacert={PKI}/etcd-ca.crt --cert=/tmp/old.crt --key=/tmp/old.key {MASTER}",
    )
    code, document = cli_diagnose(tls_lab.inventory, tmp_path / "b.tar.gz")
    assert code == 1
    found = finding(document, "node2", "tls-certificate-expired")
    assert "node2" in found["diagnosis"]
    run_on(tls_lab, "node2", "rm -f /tmp/old.crt /tmp/old.key")


def test_a_certificate_of_another_ca(
    tls_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = certificate("another-cluster-etcd-ca", ca_key, None, ca=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = certificate("k8s-provision", key, (ca, ca_key))
    put_files(tls_lab, "node1", {"/tmp/other.crt": _pem(cert), "/tmp/other.key": _pem(key)})
    client_attempt(
        tls_lab,
        "node1",
        f"--cacert={PKI}/etcd-ca.crt --cert=/tmp/other.crt --key=/tmp/other.key {MASTER}",
    )
    code, document = cli_diagnose(tls_lab.inventory, tmp_path / "b.tar.gz")
    assert code == 1
    finding(document, "node1", "tls-certificate-foreign-ca")
    run_on(tls_lab, "node1", "rm -f /tmp/other.crt /tmp/other.key")


def test_a_member_whose_own_ca_certificate_was_replaced(
    tls_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    # node2 now trusts another CA: its etcd refuses its peers' certificates, which are fine,
    # and logs them as the ones at fault. diagnose must name node2.
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = certificate("another-cluster-etcd-ca", ca_key, None, ca=True)
    since = run_on(tls_lab, "node2", "date +%s").strip()
    restart_with(tls_lab, "node2", f"{PKI}/etcd-ca.crt", _pem(other), "root", "node2",
                 "signed by unknown authority")  # fmt: skip
    code, document = cli_diagnose(tls_lab.inventory, tmp_path / "b.tar.gz")
    assert code == 1
    found = finding(document, "node2", "tls-ca-replaced")
    assert f"{PKI}/etcd-ca.crt" in found["diagnosis"]
    blamed = [
        f["host"]
        for f in document["findings"]
        if f["id"] == "tls-certificate-foreign-ca" and "seen on node2" in f["evidence"]
    ]
    assert blamed == [], document["findings"]
    up(tls_lab.inventory, "--limit", "node2")
    # etcd never got ready with the other CA: the run restarted it, where a plain start would
    # have waited for systemd to give up on it.
    journal = run_on(tls_lab, "node2", f"journalctl -u etcd --since @{since} --no-pager")
    assert "start operation timed out" not in journal, journal[-2000:]
    healthy(cluster)


def test_a_member_certificate_without_the_address_peers_dial(
    tls_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    key_pem = run_on(tls_lab, "node2", f"cat {PKI}/etcd-member.key")
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    # Signed by the cluster's etcd CA, with the member's key, for loopback only.
    cert = certificate("node2", key, etcd_ca(tls_lab), ips=("127.0.0.1",))
    # A peer logs that node2's certificate lacks the address it comes from.
    restart_with(tls_lab, "node2", f"{PKI}/etcd-member.crt", _pem(cert), "etcd", "master",
                 "not 192.168.10.3")  # fmt: skip
    code, document = cli_diagnose(tls_lab.inventory, tmp_path / "b.tar.gz")
    assert code == 1
    found = finding(document, "node2", "tls-san-missing")
    assert "192.168.10.3" in found["diagnosis"]
    up(tls_lab.inventory, "--limit", "node2")
    healthy(cluster)


def test_a_client_without_a_certificate(
    tls_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    client_attempt(tls_lab, "node1", f"--cacert={PKI}/etcd-ca.crt {MASTER}")
    code, document = cli_diagnose(tls_lab.inventory, tmp_path / "b.tar.gz")
    finding(document, "node1", "tls-client-certificate-missing")
    assert code in (0, 1)


def test_a_plaintext_client(tls_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path) -> None:
    client_attempt(tls_lab, "node2", "--endpoints=http://192.168.10.1:2379")
    code, document = cli_diagnose(tls_lab.inventory, tmp_path / "b.tar.gz")
    finding(document, "node2", "tls-plaintext-client")
    assert code in (0, 1)
