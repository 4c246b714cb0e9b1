"""The manual troubleshooting commands for one cluster, per component, with the inventory's real
names, addresses, ports, prefix and endpoints filled in. Built from the inventory alone (no
SSH), with the same placeholders as the fixes of diagnose's findings.

Every command is `HOST# command` (run on HOST as root) or `$ command` (run where
k8s-provision runs), as in diagnose's fixes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from k8s_provision import diagnose, facts, render
from k8s_provision.model import Cluster


@dataclass(frozen=True)
class Section:
    component: str
    purpose: str
    commands: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "purpose": self.purpose,
            "commands": list(self.commands),
        }


def runbook(cluster: Cluster, inventory: str, since: str = "1h") -> list[Section]:
    since_arg = diagnose.journal_since(since)

    def v(name: str) -> dict[str, str]:
        return diagnose.host_vars(cluster, cluster.host(name), inventory=inventory, since=since_arg)

    first = v(cluster.etcd[0])
    master = v(cluster.master.name)
    flannel_hosts = [h.name for h in cluster.hosts if h.runs_flannel]
    iface = facts.FLANNEL_INTERFACES.get(cluster.settings.flannel_backend)

    # k8s_security tls: the tool's etcd client certificate on every member; empty for classic.
    v2 = "".join(f" {a}" for a in facts.etcdctl_tls_args(cluster, api=2))
    v3 = "".join(f" {a}" for a in facts.etcdctl_tls_args(cluster))
    etcd = [
        f"{first['host']}# ETCDCTL_API=2 etcdctl{v2} --endpoints={first['endpoints']}"
        " cluster-health",
        f"{first['host']}# ETCDCTL_API=2 etcdctl{v2} --endpoints={first['endpoints']} member list",
        f"{first['host']}# ETCDCTL_API=3 etcdctl{v3} --endpoints={first['endpoints']}"
        " endpoint health",
        f"{first['host']}# ETCDCTL_API=3 etcdctl{v3} --endpoints={first['endpoints']}"
        " endpoint status -w table",
    ]
    for name in cluster.etcd:
        h = v(name)
        etcd += [
            f"{name}# systemctl status etcd --no-pager",
            f"{name}# journalctl -u etcd --since={h['since']} --no-pager | tail -n 50",
            f"{name}# grep -v '^#' {h['etcd_config_path']}   # expect ETCD_NAME=\"{name}\","
            f" listening on {h['ip']}:{h['client_port']} and :{h['peer_port']}",
            f"{name}# ls -la {h['data_dir']}/member",
        ]

    e = f"ETCDCTL_API=2 etcdctl{v2} --endpoints={first['endpoints']}"
    flannel = [
        f"{first['host']}# {e} get {first['prefix']}/config   # expect {first['network_json']}",
        f"{first['host']}# {e} ls {first['prefix']}/subnets   # one lease per flannel host:"
        f" {', '.join(cluster.host(n).ip for n in flannel_hosts)}",
    ]
    for name in flannel_hosts:
        h = v(name)
        flannel += [
            f"{name}# systemctl status flanneld --no-pager",
            f"{name}# journalctl -u flanneld --since={h['since']} --no-pager | tail -n 50",
            f"{name}# grep FLANNEL_ {h['flanneld_config_path']}   # expect prefix {h['prefix']},"
            f" endpoints {h['endpoints']}",
            f"{name}# cat /run/flannel/subnet.env",
        ]
        if iface:
            flannel.append(f"{name}# ip -4 addr show {iface}   # inside {h['network']}")

    docker = []
    for name in cluster.nodes:
        h = v(name)
        docker += [
            f"{name}# ip -4 addr show docker0   # inside this host's flannel lease of"
            f" {h['network']}, not 172.17.0.1/16 unless that is the lease",
            f"{name}# cat /run/flannel/docker   # docker's --bip from flanneld",
            f"{name}# systemctl status docker --no-pager",
        ]

    m = master["host"]
    kubectl = f"kubectl -s {master['api_url']}"
    masters = [
        f"{m}# curl -sS {master['api_url']}/healthz   # expect ok",
        f"{m}# {kubectl} get componentstatuses   # scheduler, controller-manager and"
        f" etcd-0..{len(cluster.etcd) - 1} Healthy",
        f"{m}# systemctl status kube-apiserver kube-controller-manager kube-scheduler --no-pager",
        f"{m}# ss -ltn | grep ':{master['api_port']} '",
    ]
    masters += [
        f"{m}# journalctl -u {unit} --since={master['since']} --no-pager | tail -n 50"
        for unit in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    ]

    node_names = ", ".join(cluster.host(n).kube_node_name for n in cluster.nodes)
    nodes = [
        f"{m}# {kubectl} get nodes -o wide   # Ready: {node_names}",
        f"{m}# {kubectl} get pods --all-namespaces -o wide",
    ]
    for name in cluster.nodes:
        h = v(name)
        nodes += [
            f"{m}# {kubectl} describe node {h['node_name']}",
            f"{name}# systemctl status kubelet kube-proxy --no-pager",
            f"{name}# journalctl -u kubelet --since={h['since']} --no-pager | tail -n 50",
            f"{name}# grep KUBELET_API_SERVER /etc/kubernetes/kubelet   # expect"
            f" --api-servers={h['api_url']}",
            f"{name}# curl -sS {h['api_url']}/healthz",
        ]

    hosts = []
    for host in cluster.hosts:
        ports = " ".join(facts.open_ports(cluster, host))
        hosts += [
            f"{host.name}# getenforce   # Permissive or Disabled on EL",
            f"{host.name}# firewall-cmd --state && firewall-cmd --list-all   # open: {ports}",
            f"{host.name}# iptables -L INPUT -n --line-numbers",
            f"{host.name}# df -h / /var/lib/etcd /var/lib/docker 2>/dev/null; free -m",
            f"{host.name}# date -u +%s   # within 5 s on every host",
        ]

    config = [
        f"$ k8s-provision render {inventory} -o rendered",
        f"$ k8s-provision plan {inventory}   # what up would change on each host",
    ]
    for host in cluster.hosts:
        config += [
            f"{host.name}# cat {planned.dest}   # compare with rendered/{host.name}{planned.dest}"
            for planned in render.planned_files(cluster, host)
        ]

    return [
        Section("etcd", "members healthy, one cluster, data dirs in place", tuple(etcd)),
        Section("flannel", "the network key in etcd and one lease per host", tuple(flannel)),
        Section("docker", "docker0 inside the host's flannel lease", tuple(docker)),
        Section("master", "the API server and its controllers", tuple(masters)),
        Section("nodes", "every node registered and Ready", tuple(nodes)),
        Section("hosts", "SELinux, firewall, disk, clock", tuple(hosts)),
        Section("config", "files on the hosts as render produces them", tuple(config)),
    ]


def runbook_text(sections: list[Section]) -> str:
    blocks = []
    for section in sections:
        lines = [f"## {section.component}: {section.purpose}"]
        lines += [f"  {command}" for command in section.commands] or ["  (no hosts)"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
