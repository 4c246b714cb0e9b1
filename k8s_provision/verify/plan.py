"""Which probes verify runs on a host: those its roles' checks read."""

from __future__ import annotations

from typing import Any

from k8s_provision import facts, service_state
from k8s_provision.model import Cluster, Host
from k8s_provision.pki import check as certs
from k8s_provision.probes import Probe, etcd, flannel, http, network, systemd
from k8s_provision.probes.config_state import config_state


def probes_for(cluster: Cluster, host: Host) -> list[Probe[Any]]:
    """The probes whose output `evaluate` needs from `host`."""
    s = cluster.settings
    probes: list[Probe[Any]] = [systemd.units(facts.host_units(host))]
    if host.is_etcd or host.is_master:
        probes.append(network.listening())
    if host.is_etcd:
        url = facts.etcd_endpoint(cluster, host)
        probes += [
            etcd.health(url),
            etcd.reach(url),
            etcd.members(url),
            *([etcd.anonymous(url)] if s.tls else []),
            flannel.network_config(url, s.flannel_etcd_prefix),
            flannel.subnets(url, s.flannel_etcd_prefix),
        ]
    if s.tls:
        probes += certs.probes_for(cluster, host)
    config_paths = service_state.host_unit_paths(cluster, host)
    if config_paths:
        probes.append(config_state(config_paths))
    if host.is_node:
        probes.append(network.docker0())
    if host.is_master:
        api = facts.api_client(cluster)
        probes += [
            http.healthz(api),
            http.kubectl_get(api),
        ]
    return probes
