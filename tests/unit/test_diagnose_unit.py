"""diagnose's findings without hosts: every signature recognised from the outputs of a
reference cluster with one fault injected (data-driven: one case per fault), ranking and
suppression, and the validation of the signature file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from k8s_provision import diagnose, inventory
from k8s_provision.diagnose import signatures as sigfile
from k8s_provision.diagnose.events import Event
from k8s_provision.diagnose.match import match_signatures
from k8s_provision.errors import ProvisionError
from k8s_provision.model import Cluster
from k8s_provision.probes import Output
from tests.unit.diagnose_faults import (
    IPTABLES_SERVICES,
    NETWORK_JSON,
    NOW,
    REFERENCE,
    TOKEN,
    Fault,
    clock,
    combine,
    component_unhealthy,
    edited,
    failed_with,
    healthy,
    http,
    journaled,
    key_elsewhere,
    key_gone,
    logging,
    members_without,
    node_not_ready,
    outputs,
    put,
    stopped,
    unreachable,
)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return inventory.load(REFERENCE)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    fault: Fault
    expect: tuple[tuple[str, str, str], ...]  # (host, component, id), in this order, first
    absent: tuple[str, ...] = ()  # ids that must not be found (suppressed or stale)
    fix: str = ""  # text the first finding's fix must contain
    ok: bool = False


REFUSED = "dial tcp 192.168.10.1:8080: getsockopt: connection refused"
WRONG_ETCD_DIAL = (
    "W1130 10:46:03.150930 1035 clientconn.go:1223] grpc: addrConn.createTransport failed to"
    " connect to {http://192.168.10.250:2379  <nil> 0 <nil>}. Err :connection error: desc ="
    ' "transport: Error while dialing dial tcp 192.168.10.250:2379: connect: no route to host".'
    " Reconnecting..."
)
STALE_ETCD = f"config-state etcd {'a' * 64} {'b' * 64} active\n"

CASES = [
    Case("healthy cluster", lambda _, c: c, (), ok=True),
    Case(
        "unreachable host",
        unreachable("timed out connecting to 192.168.10.3:22", "node2"),
        (("node2", "ssh", "host-unreachable"),),
        fix="ping -c 3 192.168.10.3",
    ),
    Case(
        "authentication failure",
        unreachable("SSH authentication failed for root@192.168.10.2:22: Auth failed", "node1"),
        (("node1", "ssh", "ssh-auth-failed"),),
        absent=("host-unreachable",),
        fix="ssh -i ~/.ssh/id_rsa -p 22 -o BatchMode=yes root@192.168.10.2 true",
    ),
    Case(
        "host key changed",
        unreachable(
            "host key of master (192.168.10.1) changed (a reinstalled host, or a"
            " man-in-the-middle); the known key is at /root/.ssh/known_hosts:3. If the change is"
            " expected, remove it:"
            " ssh-keygen -f /root/.ssh/known_hosts -R 192.168.10.1",
            "master",
        ),
        (("master", "ssh", "ssh-host-key-mismatch"),),
        absent=("host-unreachable",),
        fix="ssh-keyscan -p 22 192.168.10.1",
    ),
    Case(
        "host key revoked",
        unreachable(
            "the host key of master (192.168.10.1) is revoked (/root/.ssh/known_hosts:7);"
            " refusing to connect",
            "master",
        ),
        (("master", "ssh", "ssh-host-key-mismatch"),),
        absent=("host-unreachable",),
        fix="ssh-keyscan -p 22 192.168.10.1",
    ),
    Case(
        "stopped etcd",
        stopped("node2", "etcd"),
        (("node2", "etcd", "unit-stopped"),),
        absent=("etcd-member-unhealthy",),
        fix="node2# systemctl start etcd",
    ),
    Case(
        "failed kubelet",
        failed_with("node1", "kubelet", "F0101 failed to run Kubelet: cannot create cgroup"),
        (("node1", "kubelet", "unit-failed"),),
        fix="node1# journalctl -u kubelet --since=-1h",
    ),
    Case(
        "crash-looping flanneld",
        failed_with(
            "master", "flanneld", "fatal: bad flag", state="loaded:activating:auto-restart"
        ),
        (("master", "flanneld", "unit-failed"),),
    ),
    Case(
        "masked docker",
        stopped("node2", "docker", "masked:inactive:dead"),
        (("node2", "docker", "unit-masked"),),
        fix="node2# systemctl unmask docker",
    ),
    Case(
        "etcd data dir wiped: already bootstrapped",
        failed_with("node1", "etcd", "member 8e9e05c52164694d has already been bootstrapped"),
        (("node1", "etcd", "etcd-member-lost-data"),),
        absent=("unit-failed", "etcd-member-unhealthy"),
        fix="node1# systemctl stop etcd; rm -rf /var/lib/etcd/default.etcd",
    ),
    Case(
        "etcd data dir wiped: raft log lost",
        failed_with("node2", "etcd", "panic: tocommit(16) is out of range [lastIndex(0)]."),
        (("node2", "etcd", "etcd-member-lost-data"),),
        absent=("unit-failed",),
        fix="node2# systemctl stop etcd; rm -rf /var/lib/etcd/default.etcd",
    ),
    Case(
        "etcd member removed, its data dir still there",
        failed_with(
            "master",
            "etcd",
            "the member has been permanently removed from the cluster",
            state="loaded:inactive:dead",
        ),
        (("master", "etcd", "etcd-member-lost-data"),),
        absent=("unit-stopped",),
        fix="master# systemctl stop etcd; rm -rf /var/lib/etcd/default.etcd",
    ),
    Case(
        "an old failure before the current start is not reported",
        combine(
            failed_with("node1", "etcd", "member 8e9e05c52164694d has already been bootstrapped"),
            stopped("node1", "etcd", "loaded:active:running"),
            outputs("node1", etcd_health=Output(0, "http://192.168.10.2:2379 is healthy")),
        ),
        (),
        absent=("etcd-member-lost-data",),
        ok=True,
    ),
    Case(
        "member in another cluster",
        outputs(
            "node2",
            etcd_members=Output(0, json.dumps({"header": {"cluster_id": 7}, "members": []})),
        ),
        (("node2", "etcd", "etcd-member-foreign-cluster"),),
        fix="node2# systemctl stop etcd; rm -rf /var/lib/etcd/default.etcd",
    ),
    Case(
        "member not in the list",
        members_without("node2"),
        (("node2", "etcd", "etcd-member-removed"),),
        fix="master# ETCDCTL_API=3 etcdctl --endpoints=http://192.168.10.1:2379 member list",
    ),
    Case(
        "member removed from the cluster: its etcd exited",
        combine(
            members_without("node1"),
            failed_with(
                "node1",
                "etcd",
                "the member has been permanently removed from the cluster",
                state="loaded:inactive:dead",
            ),
        ),
        (("node1", "etcd", "etcd-member-removed"),),
        absent=("etcd-member-lost-data", "unit-stopped"),
        fix="master# ETCDCTL_API=3 etcdctl --endpoints=http://192.168.10.1:2379 member list",
    ),
    Case(
        "etcd unhealthy while its unit runs",
        outputs("master", etcd_health=Output(1, "", "http://192.168.10.1:2379 is unhealthy: x")),
        (("master", "etcd", "etcd-member-unhealthy"),),
    ),
    Case(
        "etcd refuses its configuration",
        failed_with(
            "node1",
            "etcd",
            'couldn\'t find local name "node1" in the initial cluster configuration',
        ),
        (("node1", "etcd", "etcd-config-invalid"),),
        absent=("unit-failed",),
    ),
    Case(
        "etcd data dir not its own",
        failed_with(
            "node2", "etcd", "open /var/lib/etcd/default.etcd/member/snap/db: permission denied"
        ),
        (("node2", "etcd", "etcd-data-dir-permission"),),
        fix="chown -R etcd:etcd /var/lib/etcd/default.etcd",
    ),
    # TLS faults: each journal line is what the lab's etcd 3.4 wrote (k8s_security tls).
    Case(
        "etcd cannot read its key (not the data dir)",
        failed_with("node1", "etcd", "open /etc/etcd/pki/etcd-member.key: permission denied"),
        (("node1", "etcd", "tls-key-unreadable"),),
        absent=("etcd-data-dir-permission",),
        fix="ls -l /etc/etcd/pki/etcd-member.key",
    ),
    Case(
        "a client presents an expired certificate",
        logging(
            "node2",
            "etcd",
            'etcd[587]: rejected connection from "192.168.10.2:57178" (error "tls: failed to'
            " verify client certificate: x509: certificate has expired or is not yet valid:"
            ' current time 2026-11-30T14:02:36Z is after 2026-11-29T14:02:29Z", ServerName "")',
        ),
        (("node1", "etcd", "tls-certificate-expired"),),
        fix="k8s-provision certs check inv.ini",
    ),
    Case(
        "a client presents a certificate of another CA",
        logging(
            "node2",
            "etcd",
            'etcd[587]: rejected connection from "192.168.10.2:52680" (error "tls: failed to'
            ' verify client certificate: x509: certificate signed by unknown authority",'
            ' ServerName "")',
        ),
        (("node1", "etcd", "tls-certificate-foreign-ca"),),
    ),
    Case(
        "a member's certificate lacks the address its peers dial",
        logging(
            "master",
            "etcd",
            "etcd[645]: failed to dial edc0bb3a5e3721a4 on stream MsgApp v2 (x509: certificate"
            " is valid for 192.168.10.9, not 192.168.10.2)",
        ),
        (("node1", "etcd", "tls-san-missing"),),
        fix="systemctl restart etcd",
    ),
    Case(
        "a member's certificate lacks its address, seen by the peer it dials",
        logging(
            "master",
            "etcd",
            'etcd[476]: rejected connection from "192.168.10.3:48218" (error "x509: certificate'
            ' is valid for 127.0.0.1, not 192.168.10.3", ServerName "", IPAddresses'
            ' ["127.0.0.1"], DNSNames [])',
        ),
        (("node2", "etcd", "tls-san-missing"),),
        absent=("tls-certificate-foreign-ca", "tls-certificate-expired"),
    ),
    Case(
        "a client without a certificate",
        logging(
            "node2",
            "etcd",
            'etcd[587]: rejected connection from "192.168.10.1:45578" (error "tls: client'
            ' didn\'t provide a certificate", ServerName "")',
        ),
        (("master", "etcd", "tls-client-certificate-missing"),),
        ok=True,  # a warning
    ),
    Case(
        "verify's own certificate-less probe is not a finding",
        logging(
            "node2",
            "etcd",
            'etcd[587]: rejected connection from "127.0.0.1:45578" (error "tls: client'
            ' didn\'t provide a certificate", ServerName "")',
        ),
        (),
        absent=("tls-client-certificate-missing",),
        ok=True,
    ),
    Case(
        "a plaintext client talks to TLS etcd",
        logging(
            "node2",
            "etcd",
            'etcd[587]: rejected connection from "192.168.10.2:52662" (error "tls: first record'
            ' does not look like a TLS handshake", ServerName "")',
        ),
        (("node1", "etcd", "tls-plaintext-client"),),
        ok=True,  # a warning
    ),
    Case(
        "etcd data dir unreadable (as etcd 3.4 says it)",
        failed_with("master", "etcd", "error listing data dir: /var/lib/etcd/default.etcd"),
        (("master", "etcd", "etcd-data-dir-permission"),),
        absent=("unit-failed",),
    ),
    Case(
        "listen address not on this host",
        failed_with(
            "node2", "etcd", "listen tcp 192.168.10.99:2380: bind: cannot assign requested address"
        ),
        (("node2", "etcd", "listen-address-invalid"),),
        absent=("unit-failed",),
        fix="node2# ip -4 -o addr show",
    ),
    Case(
        "running unit masked",
        stopped("node1", "kube-proxy", "masked:active:running"),
        (("node1", "kube-proxy", "unit-masked"),),
    ),
    Case(
        "running unit disabled",
        lambda cl, c: put(
            c,
            "node2",
            units=Output(
                0,
                c["node2"]
                .facts.outputs["units"]
                .stdout.replace(
                    "Id=docker.service\nLoadState=loaded\nActiveState=active\nSubState=running\n"
                    "UnitFileState=enabled",
                    "Id=docker.service\nLoadState=loaded\nActiveState=active\nSubState=running\n"
                    "UnitFileState=disabled",
                ),
            ),
        ),
        (("node2", "docker", "unit-disabled"),),
        fix="node2# systemctl enable docker",
        ok=True,  # a warning
    ),
    Case(
        "port in use",
        failed_with(
            "master",
            "kube-apiserver",
            "F0101 listen tcp 0.0.0.0:8080: bind: address already in use",
        ),
        (("master", "kube-apiserver", "port-in-use"),),
        absent=("unit-failed", "apiserver-unhealthy"),
        fix="master# ss -ltnp | grep ':8080 '",
    ),
    Case(
        "apiserver given a wrong etcd address (the line logged on the 1.20 lab)",
        failed_with(
            "master",
            "kube-apiserver",
            "W1130 10:46:03.150930 1035 clientconn.go:1223] grpc: addrConn.createTransport failed"
            " to connect to {http://192.168.10.250:2379  <nil> 0 <nil>}. Err :connection error:"
            ' desc = "transport: Error while dialing dial tcp 192.168.10.250:2379: connect: no'
            ' route to host". Reconnecting...',
        ),
        (("master", "kube-apiserver", "apiserver-etcd-unreachable"),),
        absent=("unit-failed",),
        fix="master# grep KUBE_ETCD_SERVERS /etc/kubernetes/apiserver",
    ),
    Case(
        "an apiserver restarted since it logged a wrong etcd address is not blamed for it",
        journaled(
            "master",
            "kube-apiserver",
            (70, WRONG_ETCD_DIAL),
            (40, "systemd: Stopping kube-apiserver.service - Kubernetes API Server..."),
            (39, "systemd: kube-apiserver.service: Deactivated successfully."),
            (39, "systemd: Started kube-apiserver.service - Kubernetes API Server."),
        ),
        (),
        absent=("apiserver-etcd-unreachable",),
        ok=True,
    ),
    Case(
        "nor is one that a crash loop restarted once the file was fixed",
        journaled(
            "master",
            "kube-apiserver",
            (70, WRONG_ETCD_DIAL),
            (60, "systemd: kube-apiserver.service: Main process exited, code=exited, status=1"),
            (60, "systemd: kube-apiserver.service: Failed with result 'exit-code'."),
            (
                60,
                "systemd: kube-apiserver.service: Scheduled restart job, restart counter is at 5.",
            ),
            (60, "systemd: Stopped kube-apiserver.service - Kubernetes API Server."),
            (60, "systemd: Starting kube-apiserver.service - Kubernetes API Server..."),
            (56, "systemd: Started kube-apiserver.service - Kubernetes API Server."),
        ),
        (),
        absent=("apiserver-etcd-unreachable",),
        ok=True,
    ),
    Case(
        "an apiserver still crash-looping on a wrong etcd address, waiting to restart",
        failed_with(
            "master", "kube-apiserver", WRONG_ETCD_DIAL, state="loaded:activating:auto-restart"
        ),
        (("master", "kube-apiserver", "apiserver-etcd-unreachable"),),
    ),
    Case(
        "a stopped etcd member is the cause, not the apiserver that dials it",
        combine(
            stopped("node2", "etcd"),
            logging(
                "master",
                "kube-apiserver",
                "W1130 11:49:25.150930 672 clientconn.go:1223] grpc: addrConn.createTransport"
                " failed to connect to {http://192.168.10.3:2379  <nil> 0 <nil>}. Err :connection"
                ' error: desc = "transport: Error while dialing dial tcp 192.168.10.3:2379:'
                ' connect: connection refused". Reconnecting...',
            ),
        ),
        (("node2", "etcd", "unit-stopped"),),
        absent=("apiserver-etcd-unreachable",),
        fix="node2# systemctl start etcd",
    ),
    Case(
        "flannel network key deleted",
        key_gone,
        (("master", "flannel", "flannel-network-key-missing"),),
        fix=(
            "master# ETCDCTL_API=2 etcdctl --endpoints=http://192.168.10.1:2379,"
            "http://192.168.10.2:2379,http://192.168.10.3:2379 mk /atomic.io/network/config"
            f" '{NETWORK_JSON}'"
        ),
    ),
    Case(
        "flannel network key under another prefix",
        key_elsewhere,
        (("master", "flannel", "flannel-key-other-prefix"),),
        absent=("flannel-network-key-missing",),
        fix="mk /atomic.io/network/config",
    ),
    Case(
        "flannel network key with another network",
        outputs(
            "master",
            flannel_config=http(
                json.dumps({"node": {"value": '{"Network":"10.1.0.0/16"}'}}),
            ),
        ),
        (("master", "flannel", "flannel-network-key-wrong"),),
        fix="set /atomic.io/network/config",
    ),
    Case(
        "etcd v2 API off",
        outputs("master", flannel_config=http('{"message":"404 page not found"}', 404)),
        (("master", "etcd", "etcd-v2-api-off"),),
    ),
    Case(
        "flanneld reads a key that is not there (wrong prefix in its file)",
        logging(
            "node2",
            "flanneld",
            "E0101 Couldn't fetch network config: 100: Key not found (/coreos.com/network) [12]",
        ),
        (("node2", "flanneld", "flanneld-key-not-found"),),
        fix="node2# grep -E 'FLANNEL_ETCD_(PREFIX|KEY)' /etc/sysconfig/flanneld",
    ),
    Case(
        "an old Key not found of a running flanneld is not reported",
        logging("node2", "flanneld", "100: Key not found (/atomic.io/network)", age=900),
        (),
        absent=("flanneld-key-not-found",),
        ok=True,
    ),
    Case(
        "flanneld without a lease",
        outputs(
            "master",
            flannel_subnets=http(json.dumps({"node": {"key": "/atomic.io/network/subnets"}})),
        ),
        (("master", "flanneld", "flannel-no-lease"),),
    ),
    Case(
        "docker0 outside the flannel network",
        outputs("node1", docker0=Output(0, "5: docker0 inet 172.18.0.1/16 scope global")),
        (("node1", "docker", "docker0-outside-flannel"),),
        fix="node1# systemctl restart flanneld && systemctl restart docker",
    ),
    Case(
        "kubelet cannot reach the API server, node NotReady",
        combine(
            logging(
                "node2",
                "kubelet",
                f"E0101 Failed to list *api.Node: Get http://192.168.10.1"
                f":8080/api/v1/nodes?fieldSelector=x: {REFUSED}",
            ),
            node_not_ready,
        ),
        (("node2", "kubelet", "node-cannot-reach-apiserver"),),
        absent=("node-not-ready",),
        fix="node2# curl -sS http://192.168.10.1:8080/healthz",
    ),
    Case(
        "a kubelet that lost the API server while it restarted, every node Ready again",
        logging(
            "node2",
            "kubelet",
            f"E0101 Failed to list *api.Node: Get http://192.168.10.1"
            f":8080/api/v1/nodes?fieldSelector=x: {REFUSED}",
        ),
        (),
        absent=("node-cannot-reach-apiserver",),
        ok=True,
    ),
    Case(
        "node NotReady, named for its host",
        node_not_ready,
        (("node2", "kubelet", "node-not-ready"),),
        fix="master# kubectl -s http://192.168.10.1:8080 describe node node2",
    ),
    Case(
        "pod-infra image from the Red Hat registry",
        logging(
            "node1",
            "kubelet",
            "E0101 pod_workers.go:184] Error syncing pod: image pull failed for"
            " registry.access.redhat.com/rhel7/pod-infrastructure:latest: open"
            " /etc/docker/certs.d/registry.access.redhat.com/redhat-ca.crt: no such file or"
            " directory",
        ),
        (("node1", "kubelet", "kubelet-pod-infra-image"),),
        fix="node1# yum install -y python-rhsm-certificates",
    ),
    Case(
        "pod-infra image failure seen in the events on the master",
        outputs(
            "master",
            kubectl_get_events=Output(
                0,
                "LASTSEEN COUNT NAME KIND TYPE REASON SOURCE MESSAGE\n"
                "1m 12 web-1 Pod Warning FailedSync {kubelet node2} Error syncing pod: open"
                " /etc/docker/certs.d/registry.access.redhat.com/redhat-ca.crt: no such file\n",
            ),
        ),
        (("node2", "kubelet", "kubelet-pod-infra-image"),),
    ),
    Case(
        "API server unhealthy",
        outputs("master", healthz=http("[-]poststarthook failed", 500)),
        (("master", "kube-apiserver", "apiserver-unhealthy"),),
    ),
    Case(
        "component unhealthy",
        component_unhealthy,
        (("master", "kube-apiserver", "components-unhealthy"),),
        ok=True,  # a warning
    ),
    Case(
        "ServiceAccount admission without keys",
        logging(
            "master",
            "kube-controller-manager",
            "E0101 replica_set.go:505] unable to create pods: No API token found for service"
            ' account "default"',
        ),
        (("master", "kube-controller-manager", "service-account-token-missing"),),
    ),
    Case(
        "edited configuration file",
        edited("node2", "/etc/kubernetes/kubelet", lambda t: t.replace("10250", "10251")),
        (("node2", "kubelet", "config-drift"),),
        fix="$ k8s-provision up inv.ini --limit node2",
    ),
    Case(
        "missing configuration file",
        outputs("master", **{"file:/etc/etcd/etcd.conf": Output(1, "", "cat: No such file")}),
        (("master", "etcd", "config-missing"),),
    ),
    Case(
        "service started before its configuration changed",
        outputs(
            "node1", **{"config-state": Output(0, f"config-state etcd {'a' * 64} {'b' * 64} x")}
        ),
        (("node1", "config", "config-stale"),),
        fix="$ k8s-provision up inv.ini",
    ),
    Case(
        "clock skew",
        clock("node1", 42.0),
        (("node1", "clock", "clock-skew"),),
        fix="node1# timedatectl set-ntp true",
    ),
    Case(
        "full disk",
        outputs(
            "node2",
            disk=Output(
                0,
                "k / /dev/sda1 41922560 10480640 31441920 25% /\n"
                "k /var/lib/etcd/default.etcd /dev/sdb1 1048576 1038576 10000 99% /var/lib/etcd\n",
            ),
        ),
        (("node2", "disk", "disk-full"),),
        fix="node2# df -h /var/lib/etcd/default.etcd",
    ),
    Case(
        "iptables catch-all REJECT",
        outputs("node1", iptables_save=Output(0, IPTABLES_SERVICES.format(extra=""))),
        (("node1", "firewall", "iptables-blocks-ports"),),
        fix=(
            "node1# iptables -I INPUT -p tcp -m multiport --dports 2379,2380,10250 -j ACCEPT &&"
            " iptables -I INPUT -p udp -m multiport --dports 8285 -j ACCEPT"
        ),
    ),
    Case(
        "iptables drops the etcd peer port",
        outputs(
            "master", iptables_save=Output(0, "*filter\n-A INPUT -p tcp --dport 2380 -j DROP\n")
        ),
        (("master", "firewall", "iptables-blocks-ports"),),
        fix="master# iptables -D INPUT -p tcp --dport 2380 -j DROP",
    ),
    Case(
        "firewalld without the cluster's ports",
        outputs(
            "node2",
            firewalld_state=Output(0, "running\n"),
            firewalld_list=Output(
                0, "public\n  target: default\n  services: ssh\n  ports: 2379/tcp\n"
            ),
        ),
        (("node2", "firewall", "firewalld-blocks-ports"),),
        fix="node2# firewall-cmd --permanent --add-port=2380/tcp --add-port=10250/tcp",
    ),
    Case(
        "SELinux enforcing on CentOS",
        outputs("master", getenforce=Output(0, "Enforcing\n")),
        (("master", "selinux", "selinux-enforcing"),),
        ok=True,  # a warning
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_is_named_with_host_component_and_fix(cluster: Cluster, case: Case) -> None:
    result = diagnose.evaluate(cluster, case.fault(cluster, healthy(cluster)), inventory="inv.ini")
    found = [(f.host, f.component, f.id) for f in result.findings]
    assert found[: len(case.expect)] == list(case.expect), found
    assert not {f.id for f in result.findings} & set(case.absent), found
    assert result.ok is case.ok
    if case.fix:
        assert any(case.fix in line for line in result.findings[0].fix), result.findings[0].fix


def test_a_member_with_a_replaced_ca_is_named_not_the_peers_it_refuses(cluster: Cluster) -> None:
    # node2's own etcd-ca.crt is another CA: its etcd refuses every peer's (good) certificate
    # and logs them as the culprits; verify's certs check names the file on node2.
    detail = "/etc/etcd/pki/etcd-ca.crt: not signed by the cluster's etcd CA in /state/pki"
    refused = (
        'etcd[587]: rejected connection from "192.168.10.1:52680" (error "tls: failed to verify'
        ' client certificate: x509: certificate signed by unknown authority", ServerName "")'
    )
    events = [
        Event("node2", "check", "certs", detail, {"check": "certs", "detail": detail}, detail),
        Event("node2", "journal", "etcd", refused, {"unit": "etcd", "line": refused}, "", NOW),
    ]
    found = match_signatures(
        cluster, sigfile.load_signatures(), events, inventory="inv.ini", host_times={"node2": NOW}
    )
    assert [(f.host, f.component, f.id) for f in found] == [("node2", "pki", "tls-ca-replaced")]
    assert "/etc/etcd/pki/etcd-ca.crt" in found[0].diagnosis
    # Without node2's own fault the refusal still names the peer.
    alone = match_signatures(
        cluster, sigfile.load_signatures(), events[1:], inventory="inv.ini",
        host_times={"node2": NOW},
    )  # fmt: skip
    assert [(f.host, f.id) for f in alone] == [("master", "tls-certificate-foreign-ca")]


def test_every_signature_has_a_case(cluster: Cluster) -> None:
    covered = {id_ for case in CASES for _, _, id_ in case.expect}
    covered.add("tls-ca-replaced")  # its own test above: a verify check with a journal line
    assert {s.id for s in sigfile.load_signatures()} == covered


def test_cleared_by_names_checks_verify_makes(cluster: Cluster) -> None:
    made = {
        c.check for c in diagnose.evaluate(cluster, healthy(cluster), inventory="i").report.checks
    }
    named = {c for s in sigfile.load_signatures() for m in s.matches for c in m.cleared_by}
    assert named and named <= made, named - made


def test_signature_file_covers_the_design_and_is_data(cluster: Cluster) -> None:
    signatures = sigfile.load_signatures()
    assert len(signatures) >= 12
    for sig in signatures:
        assert sig.fix and sig.diagnosis and sig.severity in sigfile.SEVERITIES
        for line in sig.fix:
            host, sep, _ = line.partition("# ")
            assert line.startswith("$ ") or (sep and host.startswith("{")), line


def test_drift_diff_is_the_evidence_and_is_redacted(cluster: Cluster) -> None:
    fault = edited(
        "node1",
        "/etc/etcd/etcd.conf",
        lambda t: t.replace(f'TOKEN="{TOKEN}"', 'TOKEN="other-token"').replace(
            'ETCD_ENABLE_V2="true"', 'ETCD_ENABLE_V2="false"'
        ),
    )
    result = diagnose.evaluate(cluster, fault(cluster, healthy(cluster)), inventory="inv.ini")
    (finding,) = result.findings
    assert finding.id == "config-drift"
    assert "2 lines added, 2 removed" in finding.diagnosis
    assert '-ETCD_ENABLE_V2="true"' in finding.evidence
    assert '+ETCD_ENABLE_V2="false"' in finding.evidence
    assert TOKEN not in finding.evidence
    assert "other-token" not in finding.evidence
    assert 'ETCD_INITIAL_CLUSTER_TOKEN="<redacted>"' in finding.evidence


def test_findings_are_ranked_root_cause_first(cluster: Cluster) -> None:
    fault = combine(
        stopped("node1", "etcd"),
        node_not_ready,
        outputs("master", getenforce=Output(0, "Enforcing\n")),
        unreachable("timed out connecting to 192.168.10.3:22", "node2"),
    )
    result = diagnose.evaluate(cluster, fault(cluster, healthy(cluster)), inventory="inv.ini")
    assert [f.id for f in result.findings] == [
        "host-unreachable",
        "unit-stopped",
        "node-not-ready",
        "selinux-enforcing",
    ]


def test_lost_data_fix_runs_on_a_healthy_member(cluster: Cluster) -> None:
    fault = combine(
        failed_with("master", "etcd", "member 1 has already been bootstrapped"),
        outputs("node1", etcd_health=Output(1, "", "http://192.168.10.2:2379 is unhealthy: x")),
    )
    result = diagnose.evaluate(cluster, fault(cluster, healthy(cluster)), inventory="inv.ini")
    finding = next(f for f in result.findings if f.id == "etcd-member-lost-data")
    assert finding.fix[1].startswith(
        "node2# ETCDCTL_API=3 etcdctl --endpoints=http://192.168.10.3:2379 member remove"
    )
    assert finding.fix[2] == (
        "node2# ETCDCTL_API=3 etcdctl --endpoints=http://192.168.10.3:2379 member add master"
        " --peer-urls=http://192.168.10.1:2380"
    )
    assert "awk -F', ' '$3 == \"master\" {print $1}'" in finding.fix[1]


# ---------------------------------------------------------------------------------------------
# Signature file validation


GOOD_MATCH = {"source": "journal", "name": "etcd", "regex": "(?P<port>\\d+) refused"}
GOOD: dict[str, Any] = {
    "id": "x",
    "component": "etcd",
    "severity": "error",
    "rank": 1,
    "match": [GOOD_MATCH],
    "diagnosis": "etcd on {host} refused {port}",
    "fix": ["{host}# ss -ltn | grep {port}"],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"severity": "fatal"}, "severity must be one of"),
        ({"match": [{"source": "syslog"}]}, "unknown source 'syslog'"),
        ({"match": [{"source": "condition", "name": "moon_phase"}]}, "unknown condition"),
        ({"diagnosis": "{nope}"}, "placeholders nope are not filled"),
        (
            {"match": [GOOD_MATCH, {"source": "unit"}]},  # the unit match has no port
            "placeholders port are not filled by every match",
        ),
        ({"match": [{"source": "check", "window": 60}]}, "for journal matches only"),
        ({"match": [{"source": "journal", "cleared_by": ["etcd:health"]}]}, "windowed matches"),
        (
            {"match": [{"source": "journal", "window": 60, "cleared_by": "etcd:health"}]},
            "a list of verify checks",
        ),
        ({"suppressed_by": ["y"]}, "suppressed_by names unknown"),
        ({"observer_suppressed_by": ["y"]}, "observer_suppressed_by names unknown"),
        ({"match": []}, "non-empty list"),
        ({"match": [{"source": "ssh", "regx": "a"}]}, "unknown keys in match: regx"),
    ],
)
def test_invalid_signatures_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sigfile.parse_signatures({"signatures": [{**GOOD, **change}]})


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate signature ids: x"):
        sigfile.parse_signatures({"signatures": [GOOD, GOOD]})


def test_a_broken_signature_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "signatures.yml"
    broken.write_text("signatures:\n  - id: x\n", encoding="utf-8")
    with pytest.raises(ProvisionError, match="invalid signature file"):
        sigfile.load_signatures(broken)
