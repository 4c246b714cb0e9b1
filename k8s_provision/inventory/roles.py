"""Which hosts play which role, from the inventory's groups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from k8s_provision.inventory.problems import Problems, few
from k8s_provision.inventory.typos import close_match
from k8s_provision.model import ROLE_ETCD, ROLE_MASTER, ROLE_NODE

# Group names accepted for each role, preferred name first: the classic layout and its
# singular, kubespray's current names, the older ones (kube-master, kube-node, kube_master)
# that earlier kubespray, kubeasz and contrib inventories still carry, and kubeadm's words
# (control plane, workers). Hints only ever suggest the first.
ROLE_GROUPS: dict[str, tuple[str, ...]] = {
    ROLE_MASTER: (
        "masters",
        "master",
        "kube_control_plane",
        "kube-master",
        "kube_master",
        "control_plane",
        "control-plane",
    ),
    ROLE_NODE: ("nodes", "node", "kube_node", "kube-node", "workers", "worker"),
    ROLE_ETCD: ("etcd",),
}

# kubespray's name for the jump host every other host is reached through.
BASTION_GROUP = "bastion"


def _members(
    role: str, groups: Mapping[str, Sequence[str]], problems: Problems
) -> list[str] | None:
    present = [g for g in ROLE_GROUPS[role] if g in groups]
    if not present:
        return None
    chosen = [str(h) for h in groups[present[0]]]
    for other in present[1:]:
        if sorted(str(h) for h in groups[other]) != sorted(chosen):
            problems.add(
                f"groups {present[0]!r} and {other!r} both name the {role} hosts but differ;"
                " keep one of them",
                field=other,
            )
    return chosen


def _typo_hint(groups: Mapping[str, Sequence[str]], role: str) -> str:
    for group in groups:
        match = close_match(group, ROLE_GROUPS[role])
        if match:
            return f"; group {group!r} looks like a typo of {ROLE_GROUPS[role][0]!r}"
    return ""


def host_typo_hint(groups: Mapping[str, Sequence[str]], host: str) -> str:
    for names in ROLE_GROUPS.values():
        for group, hosts in groups.items():
            if group in ("all", "ungrouped") or host not in hosts:
                continue
            if close_match(group, names):
                return f"; group {group!r} looks like a typo of {names[0]!r}"
    return ""


def check_roles(
    groups: Mapping[str, Sequence[str]], problems: Problems
) -> tuple[list[str], list[str], list[str], bool]:
    """masters, nodes, etcd members, and whether etcd came from an etcd group."""
    masters = _members(ROLE_MASTER, groups, problems)
    nodes = _members(ROLE_NODE, groups, problems)
    etcd = _members(ROLE_ETCD, groups, problems)
    if masters is None:
        accepted = ", ".join(ROLE_GROUPS[ROLE_MASTER])
        hint = _typo_hint(groups, ROLE_MASTER)
        problems.add(f"no masters group (accepted names: {accepted}){hint}", field="masters")
        masters = []
    elif not masters:
        problems.add("the masters group is empty; it needs exactly one host", field="masters")
    elif len(masters) > 1:
        problems.add(
            f"{len(masters)} hosts ({few(masters)}); the classic layout has exactly one master",
            field="masters",
        )
    if not nodes:
        what = "no nodes group" if nodes is None else "the nodes group is empty"
        accepted = ", ".join(ROLE_GROUPS[ROLE_NODE])
        hint = _typo_hint(groups, ROLE_NODE) if nodes is None else ""
        problems.add(
            f"{what} (accepted names: {accepted}); at least one node is needed{hint}",
            field="nodes",
        )
        nodes = []
    if etcd:
        return masters, nodes, etcd, True
    # The reference layout runs an etcd member on every master and node.
    return masters, nodes, list(dict.fromkeys([*masters, *nodes])), False


def check_etcd_count(
    etcd: Sequence[str], from_group: bool, allow_even: bool, problems: Problems
) -> None:
    if not etcd or len(etcd) % 2 or allow_even:
        return
    fix = (
        "use an odd number of hosts in the etcd group"
        if from_group
        else "add an [etcd] group listing an odd number of hosts (every master and node is a"
        " member without one)"
    )
    problems.add(
        f"{len(etcd)} members ({few(etcd)}): an even count tolerates no more failures than"
        f" {len(etcd) - 1}; {fix}, or set etcd_allow_even_members=true",
        field="etcd",
    )
