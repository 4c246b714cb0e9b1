"""Cluster-wide variables: one value per cluster, checked across the hosts that use them."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from k8s_provision.inventory.problems import Problems, few
from k8s_provision.inventory.values import (
    ADMISSION_RE,
    ARGS_RE,
    IMAGE_RE,
    TOKEN_RE,
    URL_RE,
    coerce,
    dedicated_dir_problem,
    is_ip,
    key_path_problem,
    shown,
)
from k8s_provision.model import (
    FIREWALL_MODES,
    FLANNEL_BACKENDS,
    OS_FAMILIES,
    SECURITY_MODES,
    Host,
    settings_field_types,
    variable_spec,
)

PORT_VARIABLES = (
    "etcd_client_port",
    "etcd_peer_port",
    "kube_api_port",
    "kube_api_secure_port",
    "kubelet_port",
)

# Which hosts use a variable, by prefix: a value only has to agree among them. A dedicated etcd
# host outside kubespray's k8s_cluster group never sees kube_service_addresses from
# group_vars/k8s_cluster, and its default there is no conflict. The first etcd member writes
# the flannel network into etcd, so it uses the flannel settings too.
_USERS: tuple[tuple[str, Callable[[Host, str], bool]], ...] = (
    ("etcd_client_port", lambda h, first: True),
    ("etcd_", lambda h, first: h.is_etcd),
    ("flannel_", lambda h, first: h.runs_flannel or h.name == first),
    ("kube", lambda h, first: h.runs_flannel),
    ("", lambda h, first: True),
)

# Shape of each string setting beyond its own rules below: every one is written into a quoted
# environment file, some also reach a command line.
_SHAPES: dict[str, tuple[re.Pattern[str], str]] = {
    "etcd_cluster_token": (TOKEN_RE, "non-empty letters, digits, . _ -"),
    "kube_pod_infra_image": (IMAGE_RE, "an image reference (letters, digits, . _ : / @ -)"),
    "kube_admission_control": (ADMISSION_RE, "plugin names separated by commas"),
    "kube_cluster_domain": (re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"), "a DNS domain"),
}
_ARGS = (
    "flannel_extra_options",
    "kube_apiserver_extra_args",
    "kube_controller_manager_extra_args",
    "kube_scheduler_extra_args",
    "kubelet_extra_args",
    "kube_proxy_extra_args",
)
_ARGS_CHARS = "letters, digits, spaces and , . _ : = / @ + % * - (no quotes, $, ; or newlines)"


def _users(name: str, hosts: Sequence[Host], first_etcd: str) -> list[Host]:
    for prefix, uses in _USERS:
        if name.startswith(prefix):
            return [h for h in hosts if uses(h, first_etcd)]
    raise AssertionError(name)  # the "" prefix matches every name


def setting_values(
    hosts: Sequence[Host],
    first_etcd: str,
    hostvars: Mapping[str, Mapping[str, Any]],
    problems: Problems,
) -> dict[str, Any]:
    defaults = variable_spec().cluster
    values: dict[str, Any] = {}
    users: dict[str, list[Host]] = {}
    for name, kind in settings_field_types().items():
        seen: dict[Any, list[str]] = {}
        prefix = next(p for p, _ in _USERS if name.startswith(p))
        if prefix not in users:
            users[prefix] = _users(name, hosts, first_etcd) or list(hosts)
        for host in users[prefix]:
            raw = hostvars[host.name].get(name, defaults[name])
            try:
                value = coerce(raw, kind)
            except ValueError as err:
                problems.add(str(err), host=host.name, field=name)
                continue
            seen.setdefault(value, []).append(host.name)
        if len(seen) > 1:
            listing = "; ".join(f"{shown(str(v))} on {few(h, 3)}" for v, h in seen.items())
            problems.add(
                f"differs between hosts ({listing}); it is cluster-wide: set it once for all",
                field=name,
            )
        values[name] = next(iter(seen), coerce(defaults[name], kind))
    return values


def _one_of(values: dict[str, Any], name: str, allowed: Sequence[str], problems: Problems) -> None:
    if values[name] not in allowed:
        problems.add(f"{shown(values[name])} is not one of {', '.join(allowed)}", field=name)


def check_settings(values: dict[str, Any], problems: Problems) -> None:
    for port in PORT_VARIABLES:
        if not 1 <= values[port] <= 65535:
            problems.add(f"{values[port]} is out of range (1-65535)", field=port)
    if values["etcd_client_port"] == values["etcd_peer_port"]:
        problems.add("must differ from etcd_client_port", field="etcd_peer_port")
    # 1.5 with tls serves both ports; from 1.20 kube_api_port is the only (secure) port.
    uses_both = values["k8s_security"] == "tls" and values["kube_version"].startswith("1.5")
    if uses_both and values["kube_api_port"] == values["kube_api_secure_port"]:
        problems.add("must differ from kube_api_port", field="kube_api_secure_port")
    _one_of(values, "k8s_security", SECURITY_MODES, problems)
    _one_of(values, "k8s_os_family", OS_FAMILIES, problems)
    _one_of(values, "firewall_mode", FIREWALL_MODES, problems)
    _one_of(values, "flannel_backend", FLANNEL_BACKENDS, problems)
    if not URL_RE.match(values["k8s_yum_baseurl"]):
        problems.add(
            f"{shown(values['k8s_yum_baseurl'])} is not an http://, https:// or file:// URL",
            field="k8s_yum_baseurl",
        )
    why = key_path_problem(values["flannel_etcd_prefix"])
    if why:
        problems.add(why, field="flannel_etcd_prefix")
    for name in ("etcd_data_dir", "k8s_binaries_dir"):
        why = dedicated_dir_problem(values[name]) if values[name] else None
        if why:
            problems.add(why, field=name)
    for name, (shape, what) in _SHAPES.items():
        if not shape.match(values[name]):
            problems.add(f"{shown(values[name])} is not {what}", field=name)
    for name in _ARGS:
        if not ARGS_RE.match(values[name]):
            problems.add(f"{shown(values[name])} may hold only {_ARGS_CHARS}", field=name)
    if not is_ip(values["kube_api_address"]):
        problems.add(
            f"{shown(values['kube_api_address'])} is not an IP address", field="kube_api_address"
        )
    if values["kube_log_level"] < 0:
        problems.add("must be 0 or more", field="kube_log_level")


def _network(value: str, field: str, problems: Problems) -> ipaddress.IPv4Network | None:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        hint = ""
        with contextlib.suppress(ValueError):
            hint = f" (did you mean {ipaddress.ip_network(value, strict=False)}?)"
        problems.add(f"{shown(value)} is not a valid CIDR network: {err}{hint}", field=field)
        return None
    if not isinstance(net, ipaddress.IPv4Network):
        problems.add(
            f"{value}: only IPv4 networks are supported (flannel 0.7 and Kubernetes 1.5 are"
            " IPv4-only)",
            field=field,
        )
        return None
    return net


def check_networks(values: dict[str, Any], hosts: Sequence[Host], problems: Problems) -> None:
    flannel = _network(values["flannel_network"], "flannel_network", problems)
    service = _network(values["kube_service_addresses"], "kube_service_addresses", problems)
    if flannel is not None and flannel.prefixlen > 23:
        problems.add(
            f"{flannel} is too small: flannel leases a /24 to each host, so use /23 or larger",
            field="flannel_network",
        )
    if flannel is not None and service is not None and flannel.overlaps(service):
        problems.add(
            f"{flannel} overlaps kube_service_addresses {service}", field="flannel_network"
        )
    dns = values["kube_cluster_dns"]
    if dns:
        if not is_ip(dns):
            problems.add(f"{shown(dns)} is not an IP address", field="kube_cluster_dns")
        elif service is not None and ipaddress.ip_address(dns) not in service:
            problems.add(
                f"{dns} is outside kube_service_addresses {service}", field="kube_cluster_dns"
            )
    for net, name in ((flannel, "flannel_network"), (service, "kube_service_addresses")):
        if net is None:
            continue
        inside = [h for h in hosts if is_ip(h.ip) and ipaddress.ip_address(h.ip) in net]
        for host in inside[:3]:
            problems.add(
                f"{host.ip} lies inside {name} {net}: host and cluster networks overlap",
                host=host.name,
                field="ip",
            )
        if len(inside) > 3:
            problems.add(f"{len(inside) - 3} more hosts lie inside {name} {net}", field="ip")
