"""The cluster model: typed, immutable, built once by `inventory.load` (or, inside Ansible, by
`inventory.build_cluster`) and read by render, runner, verify and diagnose."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

ROLE_MASTER = "master"
ROLE_NODE = "node"
ROLE_ETCD = "etcd"

OS_FAMILIES = ("redhat", "debian")
FLANNEL_BACKENDS = ("udp", "vxlan", "host-gw")
FIREWALL_MODES = ("open", "disable")
# tls: the cluster PKI on etcd, flannel and the API; classic: the seed guide's plaintext layout.
SECURITY_MODES = ("tls", "classic")
# Kubernetes versions whose flags the templates know (CentOS 7 extras, the lab's Debian source).
KUBE_VERSIONS = ("1.5", "1.20")


@dataclass(frozen=True)
class Settings:
    """Cluster-wide variables; names, defaults and documentation live in variables.yml."""

    k8s_security: str
    k8s_os_family: str
    firewall_mode: str
    k8s_yum_repos_manage: bool
    k8s_yum_baseurl: str
    k8s_binaries_dir: str
    etcd_client_port: int
    etcd_peer_port: int
    etcd_cluster_token: str
    etcd_data_dir: str
    etcd_allow_even_members: bool
    flannel_network: str
    flannel_backend: str
    flannel_etcd_prefix: str
    flannel_extra_options: str
    kube_api_address: str
    kube_api_port: int
    kube_api_secure_port: int
    kubelet_port: int
    kube_service_addresses: str
    kube_admission_control: str
    kube_log_level: int
    kube_allow_priv: bool
    kube_pod_infra_image: str
    kube_cluster_dns: str
    kube_cluster_domain: str
    kube_apiserver_extra_args: str
    kube_controller_manager_extra_args: str
    kube_scheduler_extra_args: str
    kubelet_extra_args: str
    kube_proxy_extra_args: str
    kube_version: str
    kube_pki_source: str
    kube_binaries_provided: bool

    @property
    def tls(self) -> bool:
        """The cluster PKI secures etcd, flannel and the API (k8s_security=tls)."""
        return self.k8s_security == "tls"

    @property
    def kube_minor(self) -> int:
        """The minor version (5 or 20): the flags that changed between releases follow it."""
        return int(self.kube_version.split(".")[1])


@dataclass(frozen=True)
class Host:
    name: str
    address: str  # where SSH connects (ansible_host)
    ip: str  # the cluster address services bind to
    roles: frozenset[str]
    kube_node_name: str
    flannel_iface: str
    connection: ConnectionSettings
    # kubespray's etcd_member_name when set, else the inventory name.
    etcd_member_name: str = ""

    @property
    def etcd_name(self) -> str:
        return self.etcd_member_name or self.name

    @property
    def is_master(self) -> bool:
        return ROLE_MASTER in self.roles

    @property
    def is_node(self) -> bool:
        return ROLE_NODE in self.roles

    @property
    def is_etcd(self) -> bool:
        return ROLE_ETCD in self.roles

    @property
    def runs_flannel(self) -> bool:
        return self.is_master or self.is_node


@dataclass(frozen=True)
class ConnectionSettings:
    """How SSH reaches the host, from the inventory's connection variables, legacy names
    (ansible_ssh_user, ansible_ssh_port, ansible_ssh_pass, ...) resolved as Ansible resolves
    them. None means the inventory does not set it (ssh_config or Ansible's default applies).
    The address itself is `Host.address`."""

    user: str | None = None
    port: int | None = None
    # A secret: kept out of repr so it never lands in a log or a traceback.
    password: str | None = field(default=None, repr=False)
    private_key_file: str | None = None
    ssh_common_args: str | None = None
    ssh_extra_args: str | None = None
    ssh_args: str | None = None
    host_key_checking: bool | None = None
    timeout: int | None = None
    control_path_dir: str | None = None
    # ansible_connection: ssh, paramiko, local, ...
    connection_type: str | None = None
    become: bool = False
    become_method: str | None = None
    become_user: str | None = None
    python_interpreter: str | None = None
    # The bastion (kubespray's `bastion` group) this host is reached through, when the host
    # has no ProxyCommand/ProxyJump of its own.
    via: Host | None = None


@dataclass(frozen=True)
class Cluster:
    source: str
    hosts: tuple[Host, ...]
    masters: tuple[str, ...]
    nodes: tuple[str, ...]
    etcd: tuple[str, ...]
    settings: Settings
    bastion: Host | None = None

    @functools.cached_property
    def _by_name(self) -> dict[str, Host]:
        # A dict, so looking every host up (render, 1000 hosts) stays linear overall.
        return {host.name: host for host in self.hosts}

    def host(self, name: str) -> Host:
        return self._by_name[name]

    @property
    def master(self) -> Host:
        return self.host(self.masters[0])


@dataclass(frozen=True)
class VariableSpec:
    cluster: dict[str, Any]
    host: dict[str, Any]


@functools.cache
def variable_spec() -> VariableSpec:
    raw = yaml.safe_load((Path(__file__).parent / "variables.yml").read_text(encoding="utf-8"))
    return VariableSpec(cluster=dict(raw["cluster"]), host=dict(raw["host"]))


def settings_field_types() -> dict[str, type]:
    """The Python type of each cluster-wide variable, taken from its default in variables.yml."""
    spec = variable_spec().cluster
    return {f.name: type(spec[f.name]) for f in fields(Settings)}
