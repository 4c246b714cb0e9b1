"""Hosts of the model: names, addresses and connection settings, each validated on entry."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from k8s_provision.inventory import connection
from k8s_provision.inventory.problems import Problems, few
from k8s_provision.inventory.roles import host_typo_hint
from k8s_provision.inventory.values import (
    HOST_NAME_RE,
    IFACE_RE,
    NODE_NAME_RE,
    SSH_HOST_RE,
    TOKEN_RE,
    USER_RE,
    has_control,
    is_ip,
    is_ipv6,
    shown,
)
from k8s_provision.model import ROLE_ETCD, Host
from k8s_provision.ssh_args import accept_new_file, host_key_override, parse_ssh_args


def suggested_node_name(name: str) -> str:
    """The lowercase DNS-1123 name closest to `name`, for the hint."""
    text = re.sub(r"[^a-z0-9.-]+", "-", name.lower())
    text = re.sub(r"-*\.-*", ".", text).strip(".-")
    return text or "node-1"


def _text(vars_: Mapping[str, Any], name: str) -> str:
    value = vars_.get(name)
    return "" if value is None else str(value)


def _check_connection(name: str, raw: Mapping[str, Any], problems: Problems) -> None:
    """Connection values reach ssh's command line and ssh_config: refuse what cannot be one."""
    variables = connection.option_variables()

    def field(key: str) -> str:
        return variables[key][0] if variables[key] else key

    address = str(raw.get("address", name))
    if not (is_ip(address) or SSH_HOST_RE.match(address)):
        problems.add(f"{shown(address)} is not an IP address or a DNS name", name, field("address"))
    port = raw.get("port")
    if port not in (None, "") and not (str(port).isdigit() and 1 <= int(str(port)[:6]) <= 65535):
        problems.add(f"{shown(str(port))} is not a port number (1-65535)", name, field("port"))
    user = raw.get("user")
    if user not in (None, "") and not USER_RE.match(str(user)):
        problems.add(f"{shown(str(user))} is not a user name", name, field("user"))
    for key, value in raw.items():
        if key != "password" and isinstance(value, str) and has_control(value):
            problems.add("must not contain newlines or control characters", name, field(key))


def _check_host_keys(name: str, vars_: Mapping[str, Any], problems: Problems) -> None:
    """Host keys are always checked: an inventory that turns checking off is refused, unless
    the operator accepts new keys into a known_hosts file of their own choosing."""
    what = host_key_override(vars_)
    if what is not None and accept_new_file() is None:
        problems.add(
            f"{what}, which turns host key checking off; host keys are always checked: remove"
            " it, or pass --accept-new-host-keys FILE to accept new hosts' keys into FILE",
            name,
        )


def build_host(
    name: str, roles: frozenset[str], vars_: Mapping[str, Any], problems: Problems
) -> Host:
    if not HOST_NAME_RE.match(name):
        problems.add(
            "is not a usable inventory name: it becomes a directory under render's -o, an etcd"
            " member name and an /etc/hosts entry, so use letters, digits, . _ - (starting and"
            " ending with a letter or digit)",
            host=shown(name),
        )
    raw = connection.resolve(vars_)
    _check_connection(name, raw, problems)
    _check_host_keys(name, vars_, problems)
    address = str(raw.get("address") or name)
    ip_set = _text(vars_, "ip")
    ip = ip_set or address
    source = "ip" if ip_set else f"ip (from {'ansible_host' if address != name else 'the name'})"
    if is_ipv6(ip):
        problems.add(
            f"{ip} is IPv6; the classic stack (flannel 0.7, Kubernetes 1.5) is IPv4-only: set"
            " ip=<IPv4 address> (ansible_host may stay IPv6 for SSH)",
            host=name,
            field="ip",
        )
    elif ip_set and not is_ip(ip_set):
        problems.add(f"{shown(ip_set)} is not a valid IP address", host=name, field="ip")
    elif not is_ip(ip):
        why = (
            "etcd members listen on IP addresses"
            if ROLE_ETCD in roles
            else "cluster services bind to IP addresses"
        )
        problems.add(
            f"no IP address: ansible_host {shown(address)} is a name and {why}; set ip=<address>",
            host=name,
            field=source if not ip_set else "ip",
        )
    node_name = _text(vars_, "kube_node_name")
    if node_name and not NODE_NAME_RE.match(node_name):
        problems.add(
            f"{shown(node_name)} is not a lowercase DNS-1123 name (a-z, 0-9, - and .)",
            host=name,
            field="kube_node_name",
        )
    elif not node_name and roles - {ROLE_ETCD} and not NODE_NAME_RE.match(name):
        problems.add(
            f"the node name defaults to the inventory name {shown(name)}, which is not a lowercase"
            " DNS-1123 name; set kube_node_name (for example"
            f" kube_node_name={suggested_node_name(name)})",
            host=name,
            field="kube_node_name",
        )
    member = _text(vars_, "etcd_member_name")
    if member and not TOKEN_RE.match(member):
        problems.add(
            f"{shown(member)} may hold only letters, digits, . _ -", name, "etcd_member_name"
        )
    iface = _text(vars_, "flannel_iface")
    if iface and not IFACE_RE.match(iface):
        problems.add(
            f"{shown(iface)} is not an interface name (up to 15 letters, digits, . _ @ -)",
            name,
            "flannel_iface",
        )
    return Host(
        name=name,
        address=address,
        ip=ip,
        roles=roles,
        kube_node_name=node_name or name,
        flannel_iface=iface,
        connection=connection.settings(raw),
        etcd_member_name=member,
    )


def build_hosts(
    all_hosts: Sequence[str],
    roles: dict[str, set[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    groups: Mapping[str, Sequence[str]],
    problems: Problems,
) -> list[Host]:
    hosts: list[Host] = []
    for name in all_hosts:
        host_roles = frozenset(role for role, members in roles.items() if name in members)
        if not host_roles:
            problems.add(
                "is in no role group (masters, nodes or etcd)" + host_typo_hint(groups, name),
                host=name,
            )
        hosts.append(build_host(name, host_roles, hostvars[name], problems))
    return hosts


def check_duplicates(hosts: Sequence[Host], problems: Problems) -> None:
    def report(
        key: Callable[[Host], str], field: str, what: str, among: Sequence[Host] = hosts
    ) -> None:
        owners: dict[str, list[str]] = {}
        for host in among:
            owners.setdefault(key(host), []).append(host.name)
        clashes = [(value, names) for value, names in owners.items() if len(names) > 1]
        for value, names in clashes[:3]:
            problems.add(f"duplicate {what} {shown(value)}: hosts {few(names)}", names[1], field)
        if len(clashes) > 3:
            problems.add(f"{len(clashes) - 3} more values shared by several hosts", field=field)

    report(lambda h: h.ip, "ip", "address")
    report(lambda h: f"{h.address}:{h.connection.port or 22}", "ansible_host", "SSH address")
    report(lambda h: h.kube_node_name, "kube_node_name", "node name")
    members = [h for h in hosts if h.is_etcd]
    report(lambda h: h.etcd_name, "etcd_member_name", "etcd member name", members)


def bastion_host(name: str, vars_: Mapping[str, Any], problems: Problems) -> Host:
    raw = connection.resolve(vars_)
    _check_connection(name, raw, problems)
    _check_host_keys(name, vars_, problems)
    return Host(
        name=name,
        address=str(raw.get("address") or name),
        ip="",
        roles=frozenset(),
        kube_node_name="",
        flannel_iface="",
        connection=connection.settings(raw),
    )


def through(host: Host, bastion: Host) -> Host:
    """Route the host through the bastion unless it is the bastion or has a proxy of its own."""
    conn = host.connection
    own = parse_ssh_args(conn.ssh_common_args, conn.ssh_extra_args)
    if host.name == bastion.name or own.proxy_command or own.proxy_jump:
        return host
    return replace(host, connection=replace(conn, via=bastion))
