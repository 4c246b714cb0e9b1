"""Cluster facts derived from the model, in one place: the units each role runs, the ports each
role and flannel backend needs open, the network interfaces the cluster creates, the etcd
client and peer URLs and the API URLs, and the Python interpreters preflight looks for and
accepts. verify, diagnose, preflight and the runbook read them here; the roles read them as
`k8s.facts` through the `k8s_provision.cluster.context` lookup (`context`). Nobody keeps a copy.

The files each host receives are `render.planned_files` (`k8s.files` for the roles)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ansible.release import __version__ as ansible_version

from k8s_provision import etcd_migration
from k8s_provision.model import Cluster, Host
from k8s_provision.probes.etcd import Endpoint
from k8s_provision.probes.http import Api

# Units in start order, and the role that runs each.
UNITS_BY_ROLE: tuple[tuple[str, str], ...] = (
    ("etcd", "etcd"),
    ("flanneld", "flannel"),
    ("docker", "runtime"),
    ("kube-apiserver", "master"),
    ("kube-controller-manager", "master"),
    ("kube-scheduler", "master"),
    ("kubelet", "node"),
    ("kube-proxy", "node"),
)

# UDP port of each flannel backend that encapsulates (host-gw needs none).
FLANNEL_BACKEND_PORTS = {"udp": "8285/udp", "vxlan": "8472/udp"}

# The network interface each flannel backend creates (host-gw creates none).
FLANNEL_INTERFACES = {"udp": "flannel0", "vxlan": "flannel.1"}
# Every interface the cluster creates on a host: flannel's and docker's bridge.
INTERFACES = ("flannel0", "flannel.1", "docker0")

# Interpreters looked for when the inventory sets no ansible_python_interpreter, newest first
# like Ansible's own discovery; the first one found is the one checked.
PYTHON_INTERPRETERS = (
    "python3.13",
    "python3.12",
    "python3.11",
    "python3.10",
    "python3.9",
    "python3.8",
    "python3.7",
    "python3.6",
    "/usr/bin/python3",
    "/usr/libexec/platform-python",
    "python3",
    "/usr/bin/python",
    "python2.7",
    "python",
)


def min_target_python(version: str = ansible_version) -> tuple[int, int]:
    """Oldest target Python the given ansible-core manages (2.16 still manages 2.7 and 3.6)."""
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) <= (2, 16):
        return (2, 7)
    if (major, minor) == (2, 17):
        return (3, 7)
    return (3, 8)


def host_units(host: Host) -> tuple[str, ...]:
    """The systemd units `host` runs, from its roles, in start order."""
    has = {
        "etcd": host.is_etcd,
        "flannel": host.runs_flannel,
        "master": host.is_master,
        "node": host.is_node,
        "runtime": host.is_node,
    }
    return tuple(unit for unit, role in UNITS_BY_ROLE if has[role])


def all_units() -> tuple[str, ...]:
    """Every unit of the cluster, in start order."""
    return tuple(unit for unit, _ in UNITS_BY_ROLE)


def role_units() -> dict[str, list[str]]:
    """{role: its units in start order}; roles: etcd, flannel, master, node and runtime (the
    node's container runtime, started by its own role before the node's services)."""
    units: dict[str, list[str]] = {}
    for unit, role in UNITS_BY_ROLE:
        units.setdefault(role, []).append(unit)
    return units


def open_ports(cluster: Cluster, host: Host) -> list[str]:
    """Ports other cluster hosts reach on `host` (`PORT/PROTO`), as firewalld opens them."""
    s = cluster.settings
    ports: list[str] = []
    if host.is_etcd:
        ports += [f"{s.etcd_client_port}/tcp", f"{s.etcd_peer_port}/tcp"]
    if host.is_master:
        ports.append(f"{s.kube_api_port}/tcp")
    if host.is_node:
        ports.append(f"{s.kubelet_port}/tcp")
    if host.runs_flannel and s.flannel_backend in FLANNEL_BACKEND_PORTS:
        ports.append(FLANNEL_BACKEND_PORTS[s.flannel_backend])
    return ports


def etcd_scheme(cluster: Cluster) -> str:
    """etcd serves clients and peers over TLS with k8s_security tls, in plaintext with classic."""
    return "https" if cluster.settings.tls else "http"


def etcd_client_url(cluster: Cluster, host: Host, scheme: str = "") -> str:
    return f"{scheme or etcd_scheme(cluster)}://{host.ip}:{cluster.settings.etcd_client_port}"


def etcd_peer_url(cluster: Cluster, host: Host, scheme: str = "") -> str:
    return f"{scheme or etcd_scheme(cluster)}://{host.ip}:{cluster.settings.etcd_peer_port}"


def etcd_local_url(cluster: Cluster, scheme: str = "") -> str:
    """etcd's client URL from a member itself."""
    return f"{scheme or etcd_scheme(cluster)}://127.0.0.1:{cluster.settings.etcd_client_port}"


def etcd_plaintext_urls(cluster: Cluster, host: Host) -> dict[str, str]:
    """The classic layout's URLs of a member: what it keeps serving while the etcd role
    migrates a plaintext cluster to tls, until it switches to the tls layout's URLs."""
    return {
        "listen_peer": etcd_peer_url(cluster, host, "http"),
        "listen_client": ",".join(
            [etcd_client_url(cluster, host, "http"), etcd_local_url(cluster, "http")]
        ),
        "advertise_client": etcd_client_url(cluster, host, "http"),
        "local": etcd_local_url(cluster, "http"),
    }


# The etcd CA and the tool's own etcd client certificate on every etcd member (k8s_security
# tls): what the roles' etcdctl calls, verify and diagnose present to etcd.
ETCD_PKI_DIR = "/etc/etcd/pki"
ETCD_CA = f"{ETCD_PKI_DIR}/etcd-ca.crt"
ETCD_TOOL_CERT = f"{ETCD_PKI_DIR}/etcd-client.crt"
ETCD_TOOL_KEY = f"{ETCD_PKI_DIR}/etcd-client.key"


def etcd_endpoint(cluster: Cluster, host: Host) -> Endpoint:
    """How verify, diagnose and the fast path reach `host`'s etcd: its client URL, with the
    tool's client certificate under k8s_security tls."""
    return _tls_endpoint(cluster, etcd_client_url(cluster, host))


def etcd_local_endpoint(cluster: Cluster) -> Endpoint:
    return _tls_endpoint(cluster, etcd_local_url(cluster))


def _tls_endpoint(cluster: Cluster, url: str) -> Endpoint:
    if not cluster.settings.tls:
        return Endpoint(url)
    return Endpoint(url, ETCD_CA, ETCD_TOOL_CERT, ETCD_TOOL_KEY)


def etcdctl_tls_args(cluster: Cluster, api: int = 3) -> list[str]:
    """etcdctl's TLS options for the tool's certificate (v3 and v2 spell them differently);
    empty for classic. Constant paths: safe as words of a shell command."""
    if not cluster.settings.tls:
        return []
    if api == 2:
        return [
            f"--ca-file={ETCD_CA}",
            f"--cert-file={ETCD_TOOL_CERT}",
            f"--key-file={ETCD_TOOL_KEY}",
        ]
    return [f"--cacert={ETCD_CA}", f"--cert={ETCD_TOOL_CERT}", f"--key={ETCD_TOOL_KEY}"]


# Where the lab's PKI (k8s_provision.pki) puts the cluster CA and the admin kubeconfig.
PKI_DIR = "/etc/kubernetes/pki"


def api_secure(cluster: Cluster) -> bool:
    """From 1.20 the API server has no insecure port: clients use the secure port with the
    cluster CA and a client certificate."""
    return cluster.settings.kube_minor >= 20


def _api_scheme(cluster: Cluster) -> str:
    return "https" if api_secure(cluster) else "http"


def api_url(cluster: Cluster) -> str:
    """The master's API port as every host reaches it: the insecure port with classic up to
    1.19, the secure port with tls or from 1.20."""
    if cluster.settings.tls or api_secure(cluster):
        return api_secure_url(cluster)
    return f"http://{cluster.master.ip}:{cluster.settings.kube_api_port}"


def api_local_url(cluster: Cluster) -> str:
    """The API port from the master itself: where kube-apiserver binds, or loopback when it
    binds every address (127.0.0.1 is in the serving certificate). With tls before 1.20 the
    insecure port, which then binds 127.0.0.1 only and serves the master itself."""
    if cluster.settings.tls and not api_secure(cluster):
        return f"http://127.0.0.1:{cluster.settings.kube_api_port}"
    address = cluster.settings.kube_api_address
    local = "127.0.0.1" if address == "0.0.0.0" else address  # noqa: S104 -- compared, not bound
    return f"{_api_scheme(cluster)}://{local}:{cluster.settings.kube_api_port}"


def _client_tls(cluster: Cluster) -> bool:
    """Hosts reach the API on its secure port with a certificate: tls, or from 1.20."""
    return cluster.settings.tls or api_secure(cluster)


def api_ca(cluster: Cluster) -> str:
    """The CA file clients check the secure port with; empty for the insecure port."""
    return f"{PKI_DIR}/ca.crt" if _client_tls(cluster) else ""


def admin_kubeconfig(cluster: Cluster) -> str:
    """The admin's kubeconfig on the master for kubectl; empty for the insecure port."""
    return f"{PKI_DIR}/admin.kubeconfig" if api_secure(cluster) else ""


# The kubelet's own health endpoint (its --healthz-port default, on loopback only).
KUBELET_HEALTHZ_URL = "http://127.0.0.1:10248/healthz"
# The controller manager's and the scheduler's (their --port defaults): where the API server
# asks when `kubectl get componentstatuses` runs, which verify does.
CONTROLLERS_HEALTHZ_URLS = (
    "http://127.0.0.1:10252/healthz",
    "http://127.0.0.1:10251/healthz",
)


def kubelet_client_cert(cluster: Cluster) -> str:
    """The node's client certificate for the secure port (system:node:<name>); empty for the
    insecure port."""
    return f"{PKI_DIR}/kubelet.crt" if _client_tls(cluster) else ""


def kubelet_client_key(cluster: Cluster) -> str:
    return f"{PKI_DIR}/kubelet.key" if _client_tls(cluster) else ""


def api_secure_url(cluster: Cluster) -> str:
    """The API server's secure port, as the kubeconfigs of the PKI name it: kube_api_port from
    1.20 (the only port), kube_api_secure_port before."""
    s = cluster.settings
    port = s.kube_api_port if s.kube_minor >= 20 else s.kube_api_secure_port
    return f"https://{cluster.master.ip}:{port}"


def pki_state_dir(cluster: Cluster) -> Path:
    """Where the controller keeps the cluster's PKI: kube_pki_source when set, else a state
    directory of its own, named by the master and a digest of what makes the cluster this
    cluster (master address and etcd cluster token), so two inventories of one cluster share
    it and two clusters never do."""
    if cluster.settings.kube_pki_source:
        return Path(cluster.settings.kube_pki_source)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    identity = f"{cluster.master.ip}\0{cluster.settings.etcd_cluster_token}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return Path(base) / "k8s-provision" / "clusters" / f"{cluster.master.name}-{digest}" / "pki"


def api_client(cluster: Cluster) -> Api:
    """How verify and diagnose reach the API server from the master: with tls before 1.20
    through the insecure port, which then serves the master's loopback only (the secure port
    refuses anonymous requests, and curl cannot read a kubeconfig's embedded certificate)."""
    if cluster.settings.tls and not api_secure(cluster):
        return Api(api_local_url(cluster))
    return Api(api_url(cluster), api_ca(cluster), admin_kubeconfig(cluster))


def context(cluster: Cluster, host: Host) -> dict[str, Any]:
    """The facts the roles read: `k8s.facts` in the `k8s_provision.cluster.context` lookup."""
    return {
        "units": list(host_units(host)),
        "all_units": list(all_units()),
        "role_units": role_units(),
        "open_ports": open_ports(cluster, host),
        "interfaces": list(INTERFACES),
        "python_interpreters": list(PYTHON_INTERPRETERS),
        "python_minimum": ".".join(map(str, min_target_python())),
        "etcd_client_url": etcd_client_url(cluster, host) if host.is_etcd else "",
        "etcd_peer_url": etcd_peer_url(cluster, host) if host.is_etcd else "",
        "etcd_local_url": etcd_local_url(cluster),
        "etcdctl_tls_args": etcdctl_tls_args(cluster),
        "etcd_migration_probe": (
            etcd_migration.probe_script(
                etcdctl_tls_args(cluster), etcd_local_url(cluster), etcd_local_url(cluster, "http")
            )
            if host.is_etcd and cluster.settings.tls
            else ""
        ),
        "etcdctl_v2_tls_args": etcdctl_tls_args(cluster, api=2),
        # For the uri module (the flannel key): the tool's etcd client certificate.
        "etcd_client_tls": (
            {"ca_path": ETCD_CA, "client_cert": ETCD_TOOL_CERT, "client_key": ETCD_TOOL_KEY}
            if cluster.settings.tls
            else {}
        ),
        "api_url": api_url(cluster),
        "api_local_url": api_local_url(cluster),
        "api_ca": api_ca(cluster),
        "kubelet_healthz_url": KUBELET_HEALTHZ_URL,
        "controllers_healthz_urls": list(CONTROLLERS_HEALTHZ_URLS),
        "kubelet_client_cert": kubelet_client_cert(cluster),
        "kubelet_client_key": kubelet_client_key(cluster),
        "pki_files": pki_files(cluster, host),
    }


def pki_files(cluster: Cluster, host: Host) -> list[dict[str, str]]:
    """The PKI files `host` receives (k8s_security tls), with their source on the controller;
    the certificates role installs them."""
    from k8s_provision.pki.plan import host_files  # pki.store imports this module

    state = pki_state_dir(cluster)
    return [
        {
            "src": str(state / f.src),
            "dest": f.dest,
            "owner": f.owner,
            "group": f.group,
            "mode": f.mode,
            "component": f.component,
        }
        for f in host_files(cluster, host)
    ]
