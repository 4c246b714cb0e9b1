"""flannel's checks: the network key in etcd, each host's subnet lease, and docker0 inside
the lease."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass

from k8s_provision import facts
from k8s_provision.model import Host
from k8s_provision.probes import Output
from k8s_provision.probes.flannel import parse_leases
from k8s_provision.probes.http import curl_error, split_http
from k8s_provision.probes.network import parse_docker0
from k8s_provision.report import Check
from k8s_provision.verify.context import Context, not_installed


@dataclass(frozen=True)
class FlannelState:
    """What etcd says about flannel, read on the first etcd member that answers."""

    config_check: Check | None
    leases: dict[str, str] | None
    why_not: str


def flannel_state(ctx: Context) -> FlannelState:
    s = ctx.cluster.settings
    key = f"{s.flannel_etcd_prefix}/config"
    name = "flannel:network-key"
    candidates = [h for h in ctx.cluster.etcd if ctx.reachable(h)]
    if not candidates:
        return FlannelState(None, None, "no etcd member is reachable over SSH")
    installed = [h for h in candidates if ctx.installed(ctx.cluster.host(h), "etcd")]
    if not installed:
        why = f"etcd is not installed on {', '.join(candidates)}"
        return FlannelState(Check(candidates[0], name, "skip", why), None, why)
    answered = [
        h
        for h in installed
        if (out := ctx.output(h, "flannel-config")) and split_http(out)[0] is not None
    ]
    if not answered:
        host = ctx.cluster.host(installed[0])
        out = ctx.output(host.name, "flannel-config")
        error = curl_error(out) if out is not None else "no output"
        detail = (
            f"cannot read {key} from etcd at {facts.etcd_client_url(ctx.cluster, host)}: {error}"
        )
        why = "no etcd member answered (see flannel:network-key)"
        return FlannelState(Check(host.name, name, "fail", detail), None, why)
    source = answered[0]
    url = facts.etcd_client_url(ctx.cluster, ctx.cluster.host(source))
    config_out = ctx.output(source, "flannel-config")
    assert config_out is not None
    check = network_key_check(
        source, key, url, *split_http(config_out), s.flannel_network, s.flannel_backend
    )
    leases: dict[str, str] | None = None
    why = ""
    subnets_out = ctx.output(source, "flannel-subnets")
    code, body = split_http(subnets_out) if subnets_out else (None, "")
    if code == 200:
        try:
            leases = parse_leases(body, s.flannel_etcd_prefix)
        except (ValueError, AttributeError):
            why = f"unreadable answer from {url} for {s.flannel_etcd_prefix}/subnets"
    elif code == 404 and '"errorCode":100' in body.replace(" ", ""):
        leases = {}  # no flanneld has registered yet
    else:
        why = f"cannot read {s.flannel_etcd_prefix}/subnets from {url} (HTTP {code})"
    return FlannelState(check, leases, why)


def network_key_check(
    host: str,
    key: str,
    url: str,
    code: int | None,
    body: str,
    network: str,
    backend: str,
) -> Check:
    name = "flannel:network-key"
    if code == 404:
        try:
            error = json.loads(body)
        except ValueError:
            error = None
        if isinstance(error, dict) and error.get("errorCode") == 100:
            return Check(
                host,
                name,
                "fail",
                f'{key} is missing from etcd (flanneld fails with "Key not found"): run'
                " `k8s-provision up` again, or store it:"
                f' ETCDCTL_API=2 etcdctl mk {key} \'{{"Network":"{network}"}}\'',
            )
        return Check(
            host,
            name,
            "fail",
            f"etcd's v2 API is off at {url} (flannel 0.7 reads only v2): set"
            " ETCD_ENABLE_V2=true in etcd's configuration and restart etcd",
        )
    if code != 200:
        return Check(host, name, "fail", f"{url} answered HTTP {code} for {key}: {body[:200]}")
    try:
        value = json.loads(json.loads(body)["node"]["value"])
        found_network = str(value["Network"])
        found_backend = str((value.get("Backend") or {}).get("Type", "udp"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return Check(host, name, "fail", f"{key} holds no valid flannel config: {body[:200]}")
    if found_network != network:
        return Check(
            host,
            name,
            "fail",
            f"{key} has Network {found_network}, the inventory's flannel_network is {network}",
        )
    if found_backend != backend:
        return Check(
            host,
            name,
            "fail",
            f"{key} has Backend {found_backend}, the inventory's flannel_backend is {backend}",
        )
    return Check(host, name, "pass", f"{key}: Network {found_network}, Backend {found_backend}")


def lease_check(
    host: Host, leases: Mapping[str, str] | None, why_not: str, prefix: str, network: str
) -> Check:
    name = "flannel:lease"
    if leases is None:
        return Check(host.name, name, "skip", f"subnet leases unknown: {why_not}")
    mine = sorted(subnet for subnet, ip in leases.items() if ip == host.ip)
    if not mine:
        return Check(
            host.name,
            name,
            "fail",
            f"no subnet lease for {host.ip} under {prefix}/subnets: flanneld on {host.name} has"
            " not registered; see journalctl -u flanneld",
        )
    flannel_net = ipaddress.ip_network(network)
    outside = [s for s in mine if not _subnet_of(s, flannel_net)]
    if outside:
        return Check(
            host.name,
            name,
            "fail",
            f"lease {', '.join(outside)} for {host.ip} is outside flannel_network {network}",
        )
    return Check(host.name, name, "pass", f"lease {', '.join(mine)} for {host.ip}")


def _subnet_of(subnet: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        candidate = ipaddress.ip_network(subnet)
    except ValueError:
        return False
    return (
        isinstance(candidate, ipaddress.IPv4Network)
        and isinstance(network, ipaddress.IPv4Network)
        and candidate.subnet_of(network)
    )


def docker0_check(
    host: Host, output: Output | None, network: str, leases: Mapping[str, str] | None
) -> Check:
    """docker0 must sit in this host's flannel lease (a /24 of the flannel network); docker's
    default 172.17.0.1/16 means docker started before flanneld wrote its options."""
    name = "docker0:subnet"
    if output is None or output.exit_code != 0 or not output.stdout.strip():
        why = output.text if output is not None else "no output"
        return Check(
            host.name,
            name,
            "fail",
            f"docker0 has no IPv4 address ({why}); see systemctl status docker",
        )
    iface = parse_docker0(output.stdout)
    if iface is None:
        return Check(host.name, name, "fail", f"cannot read docker0's address: {output.stdout}")
    flannel_net = ipaddress.IPv4Network(network)
    mine = sorted(s for s, ip in (leases or {}).items() if ip == host.ip)
    restart = "docker started before flanneld: restart docker after flanneld"
    if not iface.network.subnet_of(flannel_net) or iface.network == flannel_net:
        return Check(
            host.name,
            name,
            "fail",
            f"docker0 has {iface}, not inside a lease of {network}: {restart}",
        )
    if mine and str(iface.network) not in mine:
        return Check(
            host.name,
            name,
            "fail",
            f"docker0 has {iface}, but this host's flannel lease is {', '.join(mine)}: {restart}",
        )
    where = f"this host's lease {mine[0]}" if mine else f"flannel network {network}"
    return Check(host.name, name, "pass", f"docker0 {iface} is inside {where}")


def flannel_absent(ctx: Context, host: Host, check: str) -> Check:
    """flanneld is missing: on the Debian lab with Kubernetes 1.20 say plainly that flannel
    itself does not run there and what stands in for it."""
    s = ctx.cluster.settings
    if s.k8s_os_family == "debian" and s.kube_minor >= 20:
        return Check(
            host.name,
            check,
            "skip",
            "flannel is not running in the lab (no flanneld source or binary is reachable): "
            "pods use CNI bridge/host-local with a route per node subnet of "
            f"{s.flannel_network} instead",
        )
    return not_installed(host, check, "flanneld")
