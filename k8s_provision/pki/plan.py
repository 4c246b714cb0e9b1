"""What each host of a cluster gets from its PKI: the certificates (`leaves`), and every file
with its place on the host, owner and mode (`host_files`).

Two CAs sign: the cluster CA (the API server's serving certificate and every Kubernetes
identity) and a separate etcd CA (etcd members and etcd clients), so a certificate that can
talk to the API never opens etcd, whose contents are the whole cluster.

Keys belong to the user the daemon that reads them runs as (etcd, kube; kubelet, kube-proxy and
flanneld run as root) and are 0600; certificates and CA certificates are 0644."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from k8s_provision.model import Cluster, Host
from k8s_provision.pki.crypto import Leaf

# Where the files land on the hosts; the templates name the same paths (facts.py).
HOST_PKI_DIR = "/etc/kubernetes/pki"
ETCD_PKI_DIR = "/etc/etcd/pki"
CA_NAME = "k8s-provision cluster CA"
ETCD_CA_NAME = "k8s-provision etcd CA"
# The tool's own etcd identity (verify, diagnose and the roles' etcdctl calls).
TOOL_ETCD_CN = "k8s-provision"


@dataclass(frozen=True)
class HostFile:
    """One PKI file a host receives: `src` relative to the state directory."""

    src: str
    dest: str
    owner: str
    group: str
    mode: str
    component: str  # the role that installs it: etcd, flannel, master or node

    @property
    def secret(self) -> bool:
        return self.mode == "0600"


def service_ip(cluster: Cluster) -> str:
    """The first address of kube_service_addresses: the `kubernetes` service."""
    return str(next(ipaddress.ip_network(cluster.settings.kube_service_addresses).hosts()))


def _apiserver(cluster: Cluster, host: Host) -> Leaf:
    return Leaf(
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
        ip_addresses=(host.ip, "127.0.0.1", service_ip(cluster)),
        usages=("server",),
    )


def leaves(cluster: Cluster, host: Host) -> list[Leaf]:
    """The certificates `host` needs, by its roles: with k8s_security tls every one below; with
    classic only the Kubernetes 1.20 API's (it has no insecure port)."""
    tls, v120 = cluster.settings.tls, cluster.settings.kube_minor >= 20
    out: list[Leaf] = []
    if tls and host.is_etcd:
        out += [
            Leaf(
                "etcd-member",
                host.etcd_name,
                dns_names=(host.name, "localhost"),
                ip_addresses=(host.ip, "127.0.0.1"),
                usages=("server", "client"),
                ca="etcd",
            ),
            Leaf("etcd-client", TOOL_ETCD_CN, ca="etcd"),
        ]
    if tls and host.runs_flannel:
        out.append(Leaf("flannel-etcd-client", "flanneld", ca="etcd"))
    if host.is_master and (tls or v120):
        out += [
            _apiserver(cluster, host),
            Leaf("admin", "kubernetes-admin", "system:masters", kubeconfig=True),
            Leaf("controller-manager", "system:kube-controller-manager", kubeconfig=True),
            Leaf("scheduler", "system:kube-scheduler", kubeconfig=True),
        ]
        if tls:
            out.append(Leaf("apiserver-etcd-client", "kube-apiserver", ca="etcd"))
        if v120:
            out.append(
                Leaf("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters")
            )
    if host.is_node and (tls or v120):
        out += [
            Leaf(
                "kubelet",
                f"system:node:{host.kube_node_name}",
                "system:nodes",
                kubeconfig=True,
            ),
            Leaf("kube-proxy", "system:kube-proxy", kubeconfig=True),
        ]
        if v120:
            out.append(
                Leaf(
                    "kubelet-server",
                    host.kube_node_name,
                    dns_names=(host.name, host.kube_node_name),
                    ip_addresses=(host.ip,),
                    usages=("server",),
                )
            )
    return out


# Who reads each file of a bundle under tls: (destination directory, owner, component).
_ETCD = (ETCD_PKI_DIR, "etcd", "etcd")
_TOOL = (ETCD_PKI_DIR, "root", "etcd")
_FLANNEL = (HOST_PKI_DIR, "root", "flannel")
_APISERVER = (HOST_PKI_DIR, "kube", "master")
_ROOT_MASTER = (HOST_PKI_DIR, "root", "master")
_NODE = (HOST_PKI_DIR, "root", "node")
_READERS: dict[str, tuple[str, str, str]] = {
    "etcd-member": _ETCD,
    "etcd-client": _TOOL,
    "flannel-etcd-client": _FLANNEL,
    "apiserver": _APISERVER,
    "apiserver-etcd-client": _APISERVER,
    "apiserver-kubelet-client": _APISERVER,
    "admin": _ROOT_MASTER,
    "controller-manager": _APISERVER,
    "scheduler": _APISERVER,
    "kubelet": _NODE,
    "kube-proxy": _NODE,
    "kubelet-server": _NODE,
}


def kube_services_installed(cluster: Cluster) -> bool:
    """The Kubernetes services run on the hosts: the redhat family installs their packages,
    elsewhere only binaries already there do (kube_binaries_provided; the roles'
    kube_master_installable says the same)."""
    s = cluster.settings
    return s.k8s_os_family == "redhat" or s.kube_binaries_provided


def host_files(cluster: Cluster, host: Host) -> list[HostFile]:
    """Every PKI file `host` receives with k8s_security tls (classic ships the 1.20 bundle as
    one directory, see the kube_master and kube_node roles); empty for classic. The master's
    files only where its services run: their keys belong to the kube user, whom the packages
    (or the lab's binaries) create."""
    if not cluster.settings.tls:
        return []
    bundle = f"hosts/{host.name}"
    files: list[HostFile] = []

    def add(name: str, directory: str, owner: str, mode: str, component: str) -> None:
        files.append(
            HostFile(f"{bundle}/{name}", f"{directory}/{name}", owner, owner, mode, component)
        )

    if host.is_etcd:
        add("etcd-ca.crt", ETCD_PKI_DIR, "root", "0644", "etcd")
    if host.runs_flannel:
        add("etcd-ca.crt", HOST_PKI_DIR, "root", "0644", "flannel")
    if host.is_master or host.is_node:
        add("ca.crt", HOST_PKI_DIR, "root", "0644", "master" if host.is_master else "node")
    if host.is_master:
        add("sa.key", HOST_PKI_DIR, "kube", "0600", "master")
        add("sa.pub", HOST_PKI_DIR, "root", "0644", "master")
    for leaf in leaves(cluster, host):
        directory, owner, component = _READERS[leaf.stem]
        if leaf.kubeconfig:
            add(f"{leaf.stem}.kubeconfig", directory, owner, "0600", component)
        if leaf.stem == "kubelet":
            # Also as files: the kube_node role asks the API whether the node is Ready with
            # the node's own identity (facts.kubelet_client_cert), and the uri module cannot
            # read a kubeconfig.
            add("kubelet.crt", directory, "root", "0644", component)
            add("kubelet.key", directory, owner, "0600", component)
        elif not leaf.kubeconfig:
            add(f"{leaf.stem}.crt", directory, "root", "0644", component)
            add(f"{leaf.stem}.key", directory, owner, "0600", component)
    if not kube_services_installed(cluster):
        files = [f for f in files if f.component != "master"]
    return files
