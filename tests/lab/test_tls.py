"""The TLS profile on the TLS session lab (`tls_lab`: k8s_security tls, etcd only: the
Kubernetes 1.5 components cannot run here, their TLS settings are proven by the flag tests
and golden files): real etcd 3.4 serving https with client certificates required on the
client and the peer port, plain http and certificate-less clients refused, the flannel key
written and read over TLS, verify without a plaintext warning, and an etcd member removed and
added again over TLS. Tests run in file order."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from k8s_provision import lab as lab_api
from tests.lab.helpers import cli, explain

pytestmark = pytest.mark.lab

CA = "/etc/etcd/pki/etcd-ca.crt"
TOOL = "--cacert=/etc/etcd/pki/etcd-ca.crt --cert=/etc/etcd/pki/etcd-client.crt" + (
    " --key=/etc/etcd/pki/etcd-client.key"
)
FLANNEL_V2 = (
    "--ca-file=/etc/kubernetes/pki/etcd-ca.crt"
    " --cert-file=/etc/kubernetes/pki/flannel-etcd-client.crt"
    " --key-file=/etc/kubernetes/pki/flannel-etcd-client.key"
)
IPS = {"master": "192.168.10.1", "node1": "192.168.10.2", "node2": "192.168.10.3"}


def run(lab: lab_api.LabState, host: str, command: str) -> subprocess.CompletedProcess[str]:
    return lab_api.ssh_run(host, command, config=lab.config)


def members(lab: lab_api.LabState) -> list[str]:
    out = run(lab, "master", f"ETCDCTL_API=3 etcdctl {TOOL} member list -w json")
    assert out.returncode == 0, out.stdout + out.stderr
    return sorted(m.get("name", "") for m in json.loads(out.stdout)["members"])


def test_etcdctl_with_the_tool_certificate_sees_a_healthy_cluster(
    tls_lab: lab_api.LabState,
) -> None:
    endpoints = ",".join(f"https://{ip}:2379" for ip in IPS.values())
    out = run(
        tls_lab, "node1", f"ETCDCTL_API=3 etcdctl {TOOL} --endpoints={endpoints} endpoint health"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # etcdctl 3.4 prints endpoint health on stderr.
    assert (out.stdout + out.stderr).count("is healthy") == 3
    assert members(tls_lab) == ["master", "node1", "node2"]


def test_plain_http_is_refused(tls_lab: lab_api.LabState) -> None:
    for port in (2379, 2380):
        out = run(tls_lab, "node1", f"curl -sS -m 3 http://{IPS['node2']}:{port}/health")
        # etcd 3.4's TLS listener closes a plain HTTP connection (curl: "Empty reply from
        # server"); it never answers with the health JSON.
        assert out.returncode != 0 and '"health"' not in out.stdout, out.stdout + out.stderr
    plain = run(
        tls_lab,
        "master",
        f"ETCDCTL_API=3 etcdctl --endpoints=http://{IPS['master']}:2379 --dial-timeout=2s"
        " --command-timeout=3s endpoint health",
    )
    assert plain.returncode != 0


def test_clients_without_a_certificate_are_refused_on_both_ports(
    tls_lab: lab_api.LabState,
) -> None:
    for port, path in ((2379, "health"), (2380, "members")):
        out = run(
            tls_lab, "node1", f"curl -sS -m 3 --cacert {CA} https://{IPS['node2']}:{port}/{path}"
        )
        # The handshake fails ("sslv3 alert bad certificate" or a reset, as curl sees it).
        assert out.returncode != 0 and not out.stdout, out.stdout + out.stderr
        # The same request with the tool's certificate is answered: the refusal above is the
        # missing certificate, not a dead port.
        cert = "--cert /etc/etcd/pki/etcd-client.crt --key /etc/etcd/pki/etcd-client.key"
        ok = run(
            tls_lab,
            "node1",
            f"curl -sS -m 3 --cacert {CA} {cert} https://{IPS['node2']}:2379/health",
        )
        assert ok.returncode == 0 and '"health":"true"' in ok.stdout.replace(" ", ""), ok.stderr
    no_cert = run(
        tls_lab,
        "master",
        f"ETCDCTL_API=3 etcdctl --cacert={CA} --endpoints=https://{IPS['master']}:2379"
        " --dial-timeout=2s --command-timeout=3s endpoint health",
    )
    assert no_cert.returncode != 0


def test_the_flannel_key_is_written_and_read_over_tls(tls_lab: lab_api.LabState) -> None:
    # Written by the first member (the flannel role's uri task with the tool's certificate);
    # read here on another host with flanneld's own etcd client certificate.
    out = run(
        tls_lab,
        "node2",
        f"ETCDCTL_API=2 etcdctl {FLANNEL_V2} --endpoints=https://{IPS['node1']}:2379"
        " get /atomic.io/network/config",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout) == {"Network": "172.17.0.0/16", "Backend": {"Type": "udp"}}


def test_keys_belong_to_their_daemon_and_nobody_else_reads_them(tls_lab: lab_api.LabState) -> None:
    out = run(
        tls_lab,
        "node1",
        "stat -c '%n %U %a' /etc/etcd/pki/etcd-member.key /etc/etcd/pki/etcd-client.key"
        " /etc/kubernetes/pki/flannel-etcd-client.key /etc/etcd/pki/etcd-ca.crt",
    )
    assert out.stdout.split("\n")[:4] == [
        "/etc/etcd/pki/etcd-member.key etcd 600",
        "/etc/etcd/pki/etcd-client.key root 600",
        "/etc/kubernetes/pki/flannel-etcd-client.key root 600",
        "/etc/etcd/pki/etcd-ca.crt root 644",
    ]


def test_verify_passes_without_a_plaintext_warning(tls_lab: lab_api.LabState) -> None:
    result = cli("verify", str(tls_lab.inventory), "--json")
    assert result.returncode == 0, explain(result)
    checks = json.loads(result.stdout)["checks"]
    security = [c for c in checks if c["check"] == "security:etcd-plaintext"]
    assert len(security) == 3 and all(c["status"] == "pass" for c in security), security
    assert not [c for c in checks if c["status"] == "warn"]


def test_certs_check_and_the_admin_kubeconfig(tls_lab: lab_api.LabState, tmp_path: Path) -> None:
    result = cli("certs", "check", str(tls_lab.inventory), "--json")
    assert result.returncode == 0, explain(result)
    checks = json.loads(result.stdout)["checks"]
    assert len(checks) > 20 and {c["status"] for c in checks} == {"pass"}
    # Break one key's mode on a host: certs check names the host and the file.
    run(tls_lab, "node2", "chmod 644 /etc/etcd/pki/etcd-member.key")
    try:
        broken = cli("certs", "check", str(tls_lab.inventory), "--json")
        assert broken.returncode == 1
        failed = [c for c in json.loads(broken.stdout)["checks"] if c["status"] == "fail"]
        assert [(c["host"], c["check"]) for c in failed] == [
            ("node2", "cert:/etc/etcd/pki/etcd-member.key")
        ]
    finally:
        run(tls_lab, "node2", "chmod 600 /etc/etcd/pki/etcd-member.key")
    out = tmp_path / "admin.conf"
    made = cli("kubeconfig", str(tls_lab.inventory), "-o", str(out))
    assert made.returncode == 0, explain(made)
    assert out.stat().st_mode & 0o777 == 0o600
    assert "client-key-data" not in made.stdout + made.stderr


def test_certs_renew_rolls_new_certificates_out_keeping_quorum(tls_lab: lab_api.LabState) -> None:
    def member_cert() -> str:
        return run(tls_lab, "node1", "sha256sum /etc/etcd/pki/etcd-member.crt").stdout

    before = member_cert()
    pids = {h: run(tls_lab, h, "systemctl show -p MainPID --value etcd").stdout for h in IPS}
    renewed = cli("certs", "renew", str(tls_lab.inventory))
    assert renewed.returncode == 0, explain(renewed)
    assert member_cert() != before
    # Every member restarted for its new certificate (one at a time, each healthy before the
    # next: the playbook's restart loop), and the cluster kept all its members.
    after = {h: run(tls_lab, h, "systemctl show -p MainPID --value etcd").stdout for h in IPS}
    assert all(after[h] != pids[h] for h in IPS), (pids, after)
    assert members(tls_lab) == ["master", "node1", "node2"]
    check = cli("certs", "check", str(tls_lab.inventory), "--json")
    assert check.returncode == 0, explain(check)


def test_a_member_is_removed_and_added_again_over_tls(tls_lab: lab_api.LabState) -> None:
    removed = cli("remove-node", str(tls_lab.inventory), "node2", "--yes")
    assert removed.returncode == 0, explain(removed)
    assert members(tls_lab) == ["master", "node1"]
    # node2 is still in the inventory: `up` brings it back through member add (join.yml).
    again = cli("up", str(tls_lab.inventory))
    assert again.returncode == 0, explain(again)
    assert members(tls_lab) == ["master", "node1", "node2"]
    out = run(
        tls_lab,
        "node2",
        f"ETCDCTL_API=2 etcdctl {FLANNEL_V2} --endpoints=https://127.0.0.1:2379"
        " get /atomic.io/network/config",
    )
    assert out.returncode == 0 and '"Network"' in out.stdout, out.stdout + out.stderr
