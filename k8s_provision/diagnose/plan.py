"""What diagnose collects from a host: verify's probes (its checks are reused) and diagnose's own
(unit status and journal, configuration files, network, firewall, SELinux, disk, memory, etcd,
kubectl's view), and the journal window."""

from __future__ import annotations

import os
import re
from typing import Any

from k8s_provision import facts, render, verify
from k8s_provision.errors import UsageError
from k8s_provision.model import Cluster, Host
from k8s_provision.probes import Probe, etcd, firewalld, http, iptables, network, systemd
from k8s_provision.probes import host as host_probes


def journal_since(since: str) -> str:
    """journalctl's --since value for the CLI's --since: a duration (30m, 1h, 2d) becomes a
    relative time on the host's own clock; a date ('2026-01-31 10:00') is passed as is."""
    match = re.fullmatch(r"(\d+)\s*(s|m|min|h|d)", since.strip())
    if match:
        # systemd's own spelling: "m" would also be minutes there, "min" cannot be misread.
        return f"-{match[1]}{'min' if match[2] == 'm' else match[2]}"
    if re.fullmatch(r"\d{4}-\d\d-\d\d( \d\d:\d\d(:\d\d)?)?", since.strip()):
        return since.strip()
    raise UsageError(
        f"--since {since!r}: give a duration (90s, 30m, 1h, 2d) or a date ('2026-01-31 10:00')"
    )


def data_dir(cluster: Cluster, host: Host) -> str:
    return str(render.host_context(cluster, host.name)["etcd_data_dir"])


def disk_paths(cluster: Cluster, host: Host) -> list[str]:
    paths = ["/", "/var/log"]
    if host.is_etcd:
        # The data dir's parent too: it is what fills up when the data dir is gone or new.
        etcd_data = data_dir(cluster, host)
        paths += [os.path.dirname(etcd_data.rstrip("/")) or "/", etcd_data]
    if host.is_node:
        paths.append("/var/lib/docker")
    return list(dict.fromkeys(paths))


def diagnose_probes(cluster: Cluster, host: Host, since: str) -> list[Probe[Any]]:
    """Diagnose's own probes for `host` (verify's run alongside, see `probes_for`)."""
    units = facts.host_units(host)
    probes: list[Probe[Any]] = [systemd.status(units)] if units else []
    probes += [systemd.journal(unit, since) for unit in units]
    probes += [host_probes.file(planned.dest) for planned in render.planned_files(cluster, host)]
    probes += [
        host_probes.os_release(),
        network.ip_addr(),
        network.ip_route(),
        iptables.rules(),
        host_probes.selinux(),
        firewalld.running(),
        firewalld.zone(),
        host_probes.df(),
        host_probes.disk(disk_paths(cluster, host)),
        host_probes.free(),
    ]
    if host.is_etcd:
        url = facts.etcd_endpoint(cluster, host)
        probes += [
            etcd.member_list_v2(url),
            etcd.cluster_health_v2(url),
            etcd.endpoint_status(url),
            etcd.data_dir(data_dir(cluster, host)),
            etcd.config_search(url),
        ]
    if host.is_master:
        # kubectl get nodes and componentstatuses are verify's probes (JSON), not run twice.
        api = facts.api_client(cluster)
        probes += [
            http.kubectl_if_up("kubectl-get-pods", api, "get pods --all-namespaces -o wide"),
            http.kubectl_if_up("kubectl-get-events", api, "get events --all-namespaces"),
            http.kubectl_if_up("kubectl-describe-nodes", api, "describe nodes"),
        ]
    return probes


def probes_for(cluster: Cluster, host: Host, since: str) -> list[Probe[Any]]:
    """verify's probes (its checks are reused) and diagnose's, run by one batch script."""
    return [*verify.probes_for(cluster, host), *diagnose_probes(cluster, host, since)]
