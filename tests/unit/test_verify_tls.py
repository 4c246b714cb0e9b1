"""verify under k8s_security tls, without hosts: the probes present the tool's etcd client
certificate, and the etcd security finding asks etcd without one (outputs as the lab's etcd
3.4 and curl 7.88 printed them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_provision import inventory, verify
from k8s_provision.model import Cluster
from k8s_provision.probes import HostFacts, Output
from tests.unit.test_verify_unit import healthy_facts, row

DATA = Path(__file__).parent / "data"
# curl without a client certificate against the lab's TLS etcd (the handshake is refused).
REFUSED_WITHOUT_CERT = (
    "curl: (56) OpenSSL SSL_read: OpenSSL/3.0.20: error:0A000412:SSL routines::sslv3 alert bad"
    " certificate, errno 0\n"
)


@pytest.fixture(scope="module")
def tls_cluster() -> Cluster:
    return inventory.load(DATA / "reference-tls.ini")


def test_etcd_probes_present_the_tool_certificate(tls_cluster: Cluster) -> None:
    commands = {p.name: p.command for p in verify.probes_for(tls_cluster, tls_cluster.master)}
    tls = (
        "--cacert=/etc/etcd/pki/etcd-ca.crt --cert=/etc/etcd/pki/etcd-client.crt"
        " --key=/etc/etcd/pki/etcd-client.key"
    )
    assert tls in commands["etcd-health"] and tls in commands["etcd-members"]
    assert "--endpoints=https://192.168.10.1:2379" in commands["etcd-health"]
    assert "--cert /etc/etcd/pki/etcd-client.crt" in commands["flannel-config"]
    # Asked without a certificate on purpose.
    assert "--cacert /etc/etcd/pki/etcd-ca.crt" in commands["etcd-anonymous"]
    assert "--cert" not in commands["etcd-anonymous"]


def with_anonymous(cluster: Cluster, output: Output) -> dict[str, HostFacts]:
    facts = healthy_facts(cluster)
    return {
        name: HostFacts(name, {**got.outputs, "etcd-anonymous": output})
        for name, got in facts.items()
    }


def test_no_plaintext_warning_when_etcd_refuses_clients_without_a_certificate(
    tls_cluster: Cluster,
) -> None:
    report = verify.evaluate(
        tls_cluster, with_anonymous(tls_cluster, Output(56, "", REFUSED_WITHOUT_CERT))
    )
    check = row(report, "node1", "security:etcd-plaintext")
    assert check.status == "pass"
    assert "refuses clients without a certificate" in check.detail
    assert "sslv3 alert bad certificate" in check.detail
    assert not [
        c for c in report.checks if c.check == "security:etcd-plaintext" and c.status != "pass"
    ]


def test_etcd_answering_without_a_certificate_is_a_warning(tls_cluster: Cluster) -> None:
    report = verify.evaluate(
        tls_cluster, with_anonymous(tls_cluster, Output(0, '{"health":"true"}'))
    )
    check = row(report, "node2", "security:etcd-plaintext")
    assert check.status == "warn"
    assert "answered a client without a certificate" in check.detail
