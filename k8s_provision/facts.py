"""Cluster facts derived from the model, in one place: the units each role runs, the ports each
role and flannel backend needs open, the etcd client and peer URLs and the API URL, and the
Python interpreters preflight looks for. verify, diagnose, preflight and the runbook read them
here, and the roles read them through the `k8s_context` lookup (`context`); nobody keeps a copy.
"""

from __future__ import annotations

from typing import Any

from k8s_provision.model import Cluster, Host

# Units in start order, and the role that runs each.
UNITS_BY_ROLE: tuple[tuple[str, str], ...] = (
    ("etcd", "etcd"),
    ("flanneld", "flannel"),
    ("docker", "node"),
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

# Where ansible-core's interpreter discovery looks, newest first, for the hosts we support; the
# first one found is the one checked.
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
    "/usr/bin/python2.7",
    "python",
)


def host_units(host: Host) -> tuple[str, ...]:
    """The systemd units `host` runs, from its roles, in start order."""
    has = {
        "etcd": host.is_etcd,
        "flannel": host.runs_flannel,
        "master": host.is_master,
        "node": host.is_node,
    }
    return tuple(unit for unit, role in UNITS_BY_ROLE if has[role])


def all_units() -> tuple[str, ...]:
    """Every unit of the cluster, in start order."""
    return tuple(unit for unit, _ in UNITS_BY_ROLE)


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


def etcd_client_url(cluster: Cluster, host: Host) -> str:
    return f"http://{host.ip}:{cluster.settings.etcd_client_port}"


def etcd_peer_url(cluster: Cluster, host: Host) -> str:
    return f"http://{host.ip}:{cluster.settings.etcd_peer_port}"


def etcd_local_url(cluster: Cluster) -> str:
    """etcd's client URL from a member itself."""
    return f"http://127.0.0.1:{cluster.settings.etcd_client_port}"


def api_url(cluster: Cluster) -> str:
    """The master's insecure API port, as every host reaches it."""
    return f"http://{cluster.master.ip}:{cluster.settings.kube_api_port}"


def context(cluster: Cluster, host: Host) -> dict[str, Any]:
    """The facts the roles read, as `k8s.facts` in the `k8s_context` lookup's value."""
    return {
        "units": list(host_units(host)),
        "all_units": list(all_units()),
        "open_ports": open_ports(cluster, host),
        "flannel_interfaces": sorted(FLANNEL_INTERFACES.values()),
        "python_interpreters": list(PYTHON_INTERPRETERS),
        "etcd_client_url": etcd_client_url(cluster, host) if host.is_etcd else "",
        "etcd_peer_url": etcd_peer_url(cluster, host) if host.is_etcd else "",
        "etcd_local_url": etcd_local_url(cluster),
        "api_url": api_url(cluster),
    }
