"""etcd probes (etcdctl v3 and v2, the data directory, flannel configs anywhere in the
keyspace) and how etcdctl's output is read."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from k8s_provision.probes.base import PROBE_TIMEOUT, Output, Probe, raw


def _v3(url: str) -> str:
    return f"ETCDCTL_API=3 etcdctl --endpoints={url} --dial-timeout=2s --command-timeout=4s"


def _v2(url: str) -> str:
    return f"ETCDCTL_API=2 etcdctl --endpoints={url}"


def etcdctl_problem(output: Output) -> str:
    """The line of etcdctl's output that says what is wrong (it logs JSON warnings too)."""
    if output.exit_code == 127:
        return "etcdctl is not installed on this host"
    if output.exit_code == 124:
        return f"etcdctl timed out after {PROBE_TIMEOUT} s"
    lines = [
        line.strip()
        for line in output.text.splitlines()
        if line.strip() and not line.lstrip().startswith("{")
    ]
    for line in lines:
        if " is unhealthy: " in line:
            return line.split(" is unhealthy: ", 1)[1]
    return lines[-1].removeprefix("Error: ") if lines else f"etcdctl exited {output.exit_code}"


@dataclass(frozen=True)
class Member:
    name: str  # empty for a member added but never started
    peer_urls: tuple[str, ...]


@dataclass(frozen=True)
class MemberList:
    """`etcdctl member list -w json`: `members` None when it failed or printed no list (the
    raw `output` says why); `cluster_id` None when the header is unreadable."""

    output: Output
    members: tuple[Member, ...] | None
    cluster_id: int | None


def parse_member_list(output: Output) -> MemberList:
    if output.exit_code != 0:
        return MemberList(output, None, None)
    try:
        data = json.loads(output.stdout)
        members = tuple(
            Member(str(m.get("name", "")), tuple(str(u) for u in m.get("peerURLs") or []))
            for m in data.get("members", [])
        )
    except (ValueError, AttributeError):
        return MemberList(output, None, None)
    try:
        cluster_id: int | None = int(data["header"]["cluster_id"])
    except (ValueError, KeyError, TypeError):
        cluster_id = None
    return MemberList(output, members, cluster_id)


def health(url: str) -> Probe[Output]:
    return Probe("etcd-health", f"{_v3(url)} endpoint health", raw)


def reach(url: str) -> Probe[Output]:
    # Says why a member is down ("Connection refused") where etcdctl only times out.
    return Probe("etcd-reach", f"curl -sS -m 3 {url}/health", raw)


def members(url: str) -> Probe[MemberList]:
    return Probe("etcd-members", f"{_v3(url)} member list -w json", parse_member_list)


def member_list_v2(url: str) -> Probe[Output]:
    return Probe("etcd-member-list-v2", f"{_v2(url)} member list", raw)


def cluster_health_v2(url: str) -> Probe[Output]:
    return Probe("etcd-cluster-health-v2", f"{_v2(url)} cluster-health", raw)


def endpoint_status(url: str) -> Probe[Output]:
    return Probe("etcd-endpoint-status", f"{_v3(url)} endpoint status -w table", raw)


def data_dir(path: str) -> Probe[Output]:
    quoted = shlex.quote(path)
    return Probe("etcd-data-dir", f"ls -la -- {quoted} {quoted}/member {quoted}/member/wal", raw)


def parse_config_search(output: Output) -> list[tuple[str, str]] | None:
    """[(key, value)] of `config_search`; None when it failed."""
    if output.exit_code != 0:
        return None
    return [
        (key, value)
        for key, _, value in (line.partition("\t") for line in output.stdout.splitlines())
    ]


def config_search(url: str) -> Probe[list[tuple[str, str]] | None]:
    """Flannel network configs anywhere in etcd (not under the apiserver's /registry): finds a
    key stored under another prefix than the inventory's."""
    v2 = _v2(url)
    return Probe(
        "flannel-config-search",
        f"{v2} ls --recursive / | grep '/config$' | grep -v '^/registry/' | head -n 50"
        f' | while read -r k; do printf "%s\\t" "$k"; {v2} get "$k" | tr -d "\\n"; echo;'
        " done",
        parse_config_search,
    )
