"""etcd membership changes that never lose quorum. Before add-node or remove-node touches the
member list: every current member must answer healthy and the cluster must keep its quorum
after the change; otherwise refuse with what is wrong (remove-node --force lets a dead member
go, as long as the rest keeps quorum). Members are matched by ID and peer URL, never by name
alone: a member added by a failed add-node and never started has no name, and still counts
towards quorum. Every etcdctl call goes through whichever member answers."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass

from k8s_provision import facts
from k8s_provision.errors import OperationFailed
from k8s_provision.model import Cluster, Host
from k8s_provision.transport import Result, Transport

# etcd may still be electing or catching up right after another membership change.
REMOVE_ATTEMPTS = 6
REMOVE_RETRY_DELAY = 5.0


@dataclass(frozen=True)
class Member:
    id: int
    name: str  # empty until the member has started once
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]

    @property
    def started(self) -> bool:
        return bool(self.name)

    def describe(self) -> str:
        label = self.name or "never started"
        return f"{self.id:x} ({label}, {', '.join(self.peer_urls)})"


@dataclass(frozen=True)
class Membership:
    via: Host  # the host whose etcdctl answered
    members: tuple[Member, ...]
    healthy: frozenset[str]  # client URLs that answered healthy

    def is_healthy(self, member: Member) -> bool:
        return any(url in self.healthy for url in member.client_urls)

    def find(self, cluster: Cluster, host: Host) -> list[Member]:
        """`host`'s members: by peer URL (also an unstarted one) or by name."""
        peer = peer_url(cluster, host)
        return [m for m in self.members if peer in m.peer_urls or m.name == host.name]


def quorum(size: int) -> int:
    return size // 2 + 1


peer_url = facts.etcd_peer_url
client_url = facts.etcd_client_url


def etcdctl(endpoints: Sequence[str], *args: str, tls: Sequence[str] = ()) -> str:
    """An etcdctl v3 command line; `tls` the tool's certificate options (k8s_security tls,
    facts.etcdctl_tls_args)."""
    words = [
        "etcdctl",
        *tls,
        f"--endpoints={','.join(endpoints)}",
        "--dial-timeout=3s",
        "--command-timeout=10s",
        *args,
    ]
    return "ETCDCTL_API=3 " + shlex.join(words)


def _last_line(result: Result) -> str:
    """etcdctl logs JSON warnings before the line that says what failed."""
    lines = (result.error or result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else "(no output)"


def parse_members(text: str) -> tuple[Member, ...]:
    return tuple(
        Member(
            int(m["ID"]),
            str(m.get("name") or ""),
            tuple(m.get("peerURLs") or ()),
            tuple(m.get("clientURLs") or ()),
        )
        for m in json.loads(text).get("members", [])
    )


def parse_health(text: str) -> frozenset[str]:
    """Endpoints `etcdctl endpoint health` reports healthy (`URL is healthy: ...`)."""
    return frozenset(
        line.split()[0] for line in text.splitlines() if " is healthy" in line and line.strip()
    )


def observe(cluster: Cluster, transport: Transport, through: Sequence[Host]) -> Membership:
    """The member list and each member's health, asked through the first of `through` whose
    etcd answers (any member can: the list is the cluster's)."""
    endpoints = [client_url(cluster, h) for h in through]
    tls = facts.etcdctl_tls_args(cluster)
    problems = []
    for host in through:
        listed = transport.run(host, etcdctl(endpoints, "member", "list", "-w", "json", tls=tls))
        if not listed.ok:
            problems.append(f"{host.name}: {_last_line(listed)}")
            continue
        members = parse_members(listed.stdout)
        urls = [u for m in members for u in m.client_urls]
        health = (
            transport.run(host, etcdctl(urls, "endpoint", "health", tls=tls)) if urls else listed
        )
        # endpoint health exits 1 when any member is unhealthy; its lines still say which.
        healthy = parse_health(health.stdout + "\n" + health.stderr)
        return Membership(host, members, healthy)
    raise OperationFailed(
        "no etcd member answers; membership cannot change without a working cluster",
        details=problems,
    )


def check_add(membership: Membership, cluster: Cluster, joining: Sequence[Host]) -> None:
    """Refuse to add members unless every current member is healthy and the cluster keeps a
    quorum of healthy members after the next `member add` (they are added one at a time). A
    member listed for a joining host but never started is the leftover of a failed add-node:
    the join completes it rather than adding it again."""
    joining_urls = {peer_url(cluster, h) for h in joining}
    pending = [m for m in membership.members if not m.started and joining_urls & set(m.peer_urls)]
    sick = [m for m in membership.members if m not in pending and not membership.is_healthy(m)]
    if sick:
        raise OperationFailed(
            "not adding etcd members: not every current member is healthy",
            details=[
                *(
                    f"member {m.describe()} "
                    + (
                        "was added but never started (a failed add-node?)"
                        if not m.started
                        else "is not healthy"
                    )
                    for m in sick
                ),
                "bring it back, or take its host out with `k8s-provision remove-node --force`",
            ],
        )
    listed = {u for m in membership.members for u in m.peer_urls}
    new = [h for h in joining if peer_url(cluster, h) not in listed]
    size = len(membership.members) + (1 if new else 0)
    healthy = len(membership.members) - len(pending)
    # etcd itself lets a one-member cluster grow; beyond that it wants a started quorum.
    if len(membership.members) > 1 and healthy < quorum(size):
        raise OperationFailed(
            f"not adding etcd members: {healthy} healthy members are below the quorum"
            f" ({quorum(size)}) of {size} members"
        )


def check_remove(membership: Membership, leaving: Sequence[Member], *, force: bool) -> None:
    """Refuse a member remove when another member is unhealthy, when the leaving member is
    unhealthy without --force, or when the members left would not have a healthy quorum."""
    gone = {m.id for m in leaving}
    staying = [m for m in membership.members if m.id not in gone]
    sick_staying = [m for m in staying if not membership.is_healthy(m)]
    sick_leaving = [m for m in leaving if m.started and not membership.is_healthy(m)]
    healthy_after = len(staying) - len(sick_staying)
    if not staying or healthy_after < quorum(len(staying)):
        raise OperationFailed(
            f"not removing etcd members: {healthy_after} healthy of {len(staying)} left would"
            f" be below quorum ({quorum(len(staying))})",
            details=[f"member {m.describe()} is not healthy" for m in sick_staying],
        )
    if sick_staying:
        raise OperationFailed(
            "not removing etcd members while another member is unhealthy",
            details=[f"member {m.describe()} is not healthy" for m in sick_staying],
        )
    if sick_leaving and not force:
        raise OperationFailed(
            "not removing an etcd member that does not answer without --force",
            details=[
                *(f"member {m.describe()} is not healthy" for m in sick_leaving),
                "if that host is dead and must go, rerun with --force",
            ],
        )


def remove(cluster: Cluster, transport: Transport, membership: Membership, member: Member) -> str:
    """`member remove` through every healthy member's client URL (etcdctl fails over), retried
    while etcd settles after a previous change."""
    endpoints = sorted(membership.healthy - set(member.client_urls))
    result: Result | None = None
    for attempt in range(REMOVE_ATTEMPTS):
        result = transport.run(
            membership.via,
            etcdctl(
                endpoints,
                "member",
                "remove",
                f"{member.id:x}",
                tls=facts.etcdctl_tls_args(cluster),
            ),
        )
        if result.ok or "not found" in result.stderr:
            return f"member {member.describe()} removed"
        if attempt + 1 < REMOVE_ATTEMPTS:
            time.sleep(REMOVE_RETRY_DELAY)
    assert result is not None
    raise OperationFailed(f"etcd member remove {member.describe()} failed: {_last_line(result)}")
