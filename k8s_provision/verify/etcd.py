"""etcd's checks: each member healthy, and the membership as in the inventory."""

from __future__ import annotations

from collections import Counter

from k8s_provision import facts
from k8s_provision.model import Host
from k8s_provision.probes import etcd
from k8s_provision.probes.etcd import MemberList, etcdctl_problem
from k8s_provision.probes.http import curl_error
from k8s_provision.report import Check
from k8s_provision.verify.context import Context, not_installed


def etcd_health_check(ctx: Context, host: Host) -> Check:
    name = "etcd:health"
    if not ctx.installed(host, "etcd"):
        return not_installed(host, name, "etcd")
    url = facts.etcd_client_url(ctx.cluster, host)
    target = facts.etcd_endpoint(ctx.cluster, host)
    output = ctx.read(host.name, etcd.health(target))
    if output is not None and output.exit_code == 0 and " is healthy" in output.text:
        line = next(x for x in output.text.splitlines() if " is healthy" in x)
        return Check(host.name, name, "pass", line.strip())
    problem = etcdctl_problem(output) if output is not None else "no output"
    reach = ctx.read(host.name, etcd.reach(target))
    if reach is not None and reach.exit_code not in (0, 127):
        problem += f" ({curl_error(reach)})"
    return Check(
        host.name,
        name,
        "fail",
        f"etcd member {host.name} at {url} is unhealthy: {problem}; see journalctl -u etcd",
    )


def _member_list(ctx: Context, host: Host) -> MemberList | None:
    return ctx.read(host.name, etcd.members(facts.etcd_endpoint(ctx.cluster, host)))


def _cluster_ids(ctx: Context) -> dict[str, int]:
    """The etcd cluster ID each member reports, by host."""
    ids: dict[str, int] = {}
    for member in ctx.cluster.etcd:
        listed = _member_list(ctx, ctx.cluster.host(member))
        if listed is not None and listed.cluster_id is not None:
            ids[member] = listed.cluster_id
    return ids


def etcd_members_check(ctx: Context, host: Host) -> Check:
    """The membership this member sees: count and names as in the inventory's etcd group, and
    the same cluster as the other members (a stale data dir bootstraps a cluster of its own)."""
    name = "etcd:members"
    if not ctx.installed(host, "etcd"):
        return not_installed(host, name, "etcd")
    listed = _member_list(ctx, host)
    url = facts.etcd_client_url(ctx.cluster, host)
    if listed is None or listed.output.exit_code != 0:
        problem = etcdctl_problem(listed.output) if listed is not None else "no output"
        return Check(host.name, name, "fail", f"cannot list etcd members at {url}: {problem}")
    if listed.members is None:
        text = listed.output.text
        return Check(host.name, name, "fail", f"unreadable etcdctl member list: {text}")
    names = [m.name for m in listed.members]
    expected = list(ctx.cluster.etcd)
    problems = []
    if len(names) != len(expected):
        problems.append(f"{len(names)} members, the inventory's etcd group has {len(expected)}")
    missing = sorted(set(expected) - set(names))
    extra = sorted(n for n in set(names) - set(expected) if n)
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    if extra:
        problems.append(f"not in the inventory: {', '.join(extra)}")
    if "" in names:
        problems.append("a member was added but never started (it has no name yet)")
    ids = _cluster_ids(ctx)
    if host.name in ids and len(set(ids.values())) > 1:
        common, _ = Counter(ids.values()).most_common(1)[0]
        if ids[host.name] != common:
            others = ", ".join(h for h, i in ids.items() if i == common)
            problems.append(
                f"this member is in another etcd cluster than {others}: its data dir holds"
                " another cluster; empty it and re-add the member (etcdctl member remove/add,"
                " then start it with ETCD_INITIAL_CLUSTER_STATE=existing)"
            )
    if problems:
        return Check(host.name, name, "fail", "; ".join(problems))
    order = {member: i for i, member in enumerate(expected)}
    in_order = ", ".join(sorted(names, key=lambda n: order.get(n, len(order))))
    return Check(host.name, name, "pass", f"{len(names)} members: {in_order}")
