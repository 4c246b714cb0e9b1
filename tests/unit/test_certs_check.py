"""`certs check` against real certificates made by the PKI (and a few made wrong on purpose
with the same cryptography calls): pass, expiring, expired, foreign CA, SAN missing, wrong
owner or mode, a key that is not the PKI's."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from k8s_provision import inventory, pki, verify
from k8s_provision.model import Cluster
from k8s_provision.pki import check, crypto
from k8s_provision.probes import HostFacts, Output
from k8s_provision.probes.certs import files as files_probe
from k8s_provision.probes.files import FileState
from tests.unit.file_output import files_output

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cluster, Path]:
    root = tmp_path_factory.mktemp("certs")
    path = root / "tls.ini"
    path.write_text((DATA / "reference-tls.ini").read_text() + f"kube_pki_source={root}/pki\n")
    cluster = inventory.load(path)
    return cluster, pki.ensure_pki(cluster, root / "pki")


def host_output(
    cluster: Cluster,
    state: Path,
    host: str,
    replace: dict[str, tuple[str, str, bytes]] | None = None,
) -> HostFacts:
    """What the pki-files probe prints on a host holding exactly the PKI's files; `replace`
    maps a destination to (owner, mode, content) found there instead."""
    planned = pki.host_files(cluster, cluster.host(host))
    states = []
    for f in planned:
        owner, mode, data = (f.owner, f.mode.lstrip("0"), (state / f.src).read_bytes())
        if replace and f.dest in replace:
            owner, mode, data = replace[f.dest]
        shown = data.decode() if f.dest.endswith(".crt") else ""
        digest = hashlib.sha256(data).hexdigest()
        states.append(FileState(f.dest, "file", digest, mode, owner, "root", shown))
    text = files_output(states)
    probe = files_probe([f.dest for f in planned])
    return HostFacts(host, {probe.name: Output(0, text)})


def rows(
    cluster: Cluster, state: Path, host: str, **kw: dict[str, tuple[str, str, bytes]]
) -> dict[str, tuple[str, str]]:
    got = host_output(cluster, state, host, kw.get("replace"))
    return {
        c.check.removeprefix("cert:"): (c.status, c.detail)
        for c in check.file_checks(cluster, cluster.host(host), got, state)
    }


def leaf_pem(
    state: Path, common_name: str, *, days: float, ips: tuple[str, ...], ca: str = "etcd-ca"
) -> bytes:
    ca_cert = crypto.load_cert((state / f"{ca}.crt").read_bytes())
    ca_key = crypto.load_key((state / f"{ca}.key").read_bytes(), "ca")
    key = crypto.load_key((state / "hosts/node1/etcd-member.key").read_bytes(), "key")
    now = datetime.datetime.now(datetime.UTC)
    names = crypto.alt_names(("node1", "localhost"), ips)
    cert = (
        x509.CertificateBuilder()
        .subject_name(crypto.subject(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=400))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return crypto.cert_pem(cert)


MEMBER = "/etc/etcd/pki/etcd-member.crt"


def test_a_host_as_the_pki_made_it_passes(made: tuple[Cluster, Path]) -> None:
    cluster, state = made
    for host in cluster.hosts:
        found = rows(cluster, state, host.name)
        assert found and {s for s, _ in found.values()} == {"pass"}, found
    assert "valid until" in rows(cluster, state, "node1")[MEMBER][1]


def test_expiring_warns_and_expired_fails(made: tuple[Cluster, Path]) -> None:
    cluster, state = made
    soon = leaf_pem(state, "node1", days=10, ips=("192.168.10.2", "127.0.0.1"))
    status, detail = rows(cluster, state, "node1", replace={MEMBER: ("root", "644", soon)})[MEMBER]
    assert status == "warn" and ("in 9 days" in detail or "in 10 days" in detail), detail
    gone = leaf_pem(state, "node1", days=-1, ips=("192.168.10.2", "127.0.0.1"))
    status, detail = rows(cluster, state, "node1", replace={MEMBER: ("root", "644", gone)})[MEMBER]
    assert status == "fail" and "expired on" in detail


def test_a_certificate_of_another_ca_fails(made: tuple[Cluster, Path]) -> None:
    cluster, state = made
    foreign = leaf_pem(state, "node1", days=300, ips=("192.168.10.2",), ca="ca")
    status, detail = rows(cluster, state, "node1", replace={MEMBER: ("root", "644", foreign)})[
        MEMBER
    ]
    assert status == "fail" and "not signed by the cluster's etcd CA" in detail


def test_a_missing_san_fails_naming_the_address(made: tuple[Cluster, Path]) -> None:
    cluster, state = made
    other = leaf_pem(state, "node1", days=300, ips=("192.168.10.3",))
    status, detail = rows(cluster, state, "node1", replace={MEMBER: ("root", "644", other)})[MEMBER]
    assert status == "fail" and "SAN missing 192.168.10.2" in detail


def test_owner_mode_and_a_foreign_key_fail(made: tuple[Cluster, Path]) -> None:
    cluster, state = made
    key = "/etc/etcd/pki/etcd-member.key"
    data = (state / "hosts/node1/etcd-member.key").read_bytes()
    status, detail = rows(cluster, state, "node1", replace={key: ("root", "644", data)})[key]
    assert status == "fail" and "owner root mode 644, want etcd 0600" in detail
    status, detail = rows(cluster, state, "node1", replace={key: ("etcd", "600", b"other")})[key]
    assert status == "fail" and "differs from the cluster PKI's copy" in detail
    assert "other" not in detail  # a key's content never reaches a message


def test_verify_includes_one_certs_row_per_host(made: tuple[Cluster, Path]) -> None:
    cluster, state = made
    facts = {h.name: host_output(cluster, state, h.name) for h in cluster.hosts}
    report = verify.evaluate(cluster, facts)
    certs = [c for c in report.checks if c.check == "certs"]
    assert [c.host for c in certs] == ["master", "node1", "node2"]
    assert {c.status for c in certs} == {"pass"}
    gone = leaf_pem(state, "node1", days=-1, ips=("192.168.10.2", "127.0.0.1"))
    facts["node1"] = host_output(cluster, state, "node1", {MEMBER: ("root", "644", gone)})
    bad = [
        c
        for c in verify.evaluate(cluster, facts).checks
        if c.check == "certs" and c.host == "node1"
    ]
    assert bad[0].status == "fail" and "expired" in bad[0].detail


def test_the_probe_command_runs_in_a_real_shell(tmp_path: Path) -> None:
    import subprocess

    crt, key = tmp_path / "a.crt", tmp_path / "a.key"
    crt.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    key.write_text("secret")
    key.chmod(0o600)
    probe = files_probe([str(crt), str(key), str(tmp_path / "gone.crt")])
    done = subprocess.run(["sh", "-c", probe.command], capture_output=True, text=True, check=False)
    found = probe.parse(Output(done.returncode, done.stdout, done.stderr))
    assert found is not None, done.stderr
    assert found[str(key)].mode == "600" and found[str(key)].content == ""
    assert "secret" not in done.stdout  # a key's content never leaves the host
    assert found[str(key)].sha256 == hashlib.sha256(b"secret").hexdigest()
    assert found[str(crt)].content.startswith("-----BEGIN CERTIFICATE-----")
    assert not found[str(tmp_path / "gone.crt")].present
