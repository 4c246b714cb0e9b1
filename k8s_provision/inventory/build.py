"""`build_cluster`: every rule that turns groups and host variables into a `Cluster`.

It works on plain mappings, so the collection's lookup (k8s_provision.cluster.context) builds
the very same model from a play's `groups` and `hostvars`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from k8s_provision.inventory import typos
from k8s_provision.inventory.hosts import bastion_host, build_hosts, check_duplicates, through
from k8s_provision.inventory.problems import Problems, few
from k8s_provision.inventory.roles import BASTION_GROUP, check_etcd_count, check_roles
from k8s_provision.inventory.settings import check_networks, check_settings, setting_values
from k8s_provision.model import ROLE_ETCD, ROLE_MASTER, ROLE_NODE, Cluster, Host, Settings


def typo_findings(
    all_hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]], source: str
) -> list[str]:
    """One line per likely typo of one of our variables, naming the hosts that set it."""
    # Group variables repeat on every host: collect the distinct names first (a C-level set
    # union), so 1000 hosts with kubespray's hundreds of variables stay cheap.
    names: set[str] = set()
    for host in all_hosts:
        names.update(hostvars[host])
    flagged = {name: match for name in names if (match := typos.suggestion(name))}
    lines = []
    for name, match in sorted(flagged.items()):
        hosts = [host for host in all_hosts if name in hostvars[host]]
        lines.append(
            f"{source}: host {few(hosts, 3)}: {name}: unknown variable (did you mean {match!r}?)"
        )
    return lines


def _bastion(
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    problems: Problems,
) -> Host | None:
    names = [str(h) for h in groups.get(BASTION_GROUP, [])]
    if not names:
        return None
    if len(names) > 1:
        problems.add(
            f"{len(names)} hosts ({few(names)}); give exactly one bastion", field=BASTION_GROUP
        )
    return bastion_host(names[0], hostvars[names[0]], problems)


def build_cluster(
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    source: str,
    *,
    check_typos: bool = True,
) -> Cluster:
    """Validate groups and variables into a Cluster, or raise InventoryError listing every
    problem. `hostvars` maps each host to its resolved variables. With `check_typos`, a likely
    typo of one of our variables is one of the problems (--strict)."""
    problems = Problems(source)
    masters, nodes, etcd, etcd_from_group = check_roles(groups, problems)
    bastion = _bastion(groups, hostvars, problems)
    members = {*masters, *nodes, *etcd}
    all_hosts = [
        str(h)
        for h in groups.get("all", [])
        if bastion is None or h != bastion.name or h in members
    ]
    listed = set(all_hosts)
    all_hosts += [h for h in dict.fromkeys([*masters, *nodes, *etcd]) if h not in listed]
    if not all_hosts:
        problems.add("no hosts")
    roles = {ROLE_MASTER: set(masters), ROLE_NODE: set(nodes), ROLE_ETCD: set(etcd)}
    hosts = build_hosts(all_hosts, roles, hostvars, groups, problems)
    if bastion is not None:
        hosts = [through(host, bastion) for host in hosts]
    values = setting_values(hosts, etcd[0] if etcd else "", hostvars, problems)
    check_settings(values, problems)
    check_duplicates(hosts, problems)
    check_networks(values, hosts, problems)
    check_etcd_count(etcd, etcd_from_group, values["etcd_allow_even_members"], problems)
    if check_typos:
        problems.lines += typo_findings(all_hosts, hostvars, source)
    problems.raise_if_any()
    return Cluster(
        source=source,
        hosts=tuple(hosts),
        masters=tuple(masters),
        nodes=tuple(nodes),
        etcd=tuple(etcd),
        settings=Settings(**{f.name: values[f.name] for f in fields(Settings)}),
        bastion=bastion,
    )
