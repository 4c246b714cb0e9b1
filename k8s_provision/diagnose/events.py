"""Events: everything observed on the hosts that a signature may recognise (unit states and
journal lines, structured conditions such as clock skew, a full disk or a closed port, failed
verify checks, drift, and each probe's raw output)."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from k8s_provision import facts, preflight
from k8s_provision.diagnose.collection import Collected
from k8s_provision.diagnose.drift import Drift, diff_stat
from k8s_provision.diagnose.plan import disk_paths
from k8s_provision.model import Cluster
from k8s_provision.probes import etcd, firewalld, iptables, systemd
from k8s_provision.probes import host as host_probes
from k8s_provision.report import Report

DISK_MIN_FREE_MB = 100
DISK_MAX_USE_PCT = 95
EVIDENCE_LINES = 30


@dataclass(frozen=True)
class Event:
    """Something observed on `host` that a signature may recognise."""

    host: str
    source: str
    name: str
    text: str
    vars: Mapping[str, str] = field(default_factory=dict)
    evidence: str = ""
    time: float | None = None  # journal lines: when (host clock)
    last_run: bool = False  # journal lines: part of the last start of a unit not running now
    stale: bool = False  # journal lines: logged before the unit's last start


def truncate(text: str, lines: int = EVIDENCE_LINES) -> str:
    kept = text.rstrip("\n").splitlines()
    if len(kept) <= lines:
        return "\n".join(kept)
    return "\n".join([*kept[:lines], f"... ({len(kept) - lines} more lines in the bundle)"])


def _host_events(cluster: Cluster, got: Collected, since: str) -> Iterator[Event]:
    """Unit states and journal lines of one reachable host."""
    units = facts.host_units(cluster.host(got.host))
    states = got.read(systemd.units(units)) or {}
    for unit in units:
        state = states.get(unit)
        lines = got.read(systemd.journal(unit, since)) or []
        running = state is None or not state.installed or state.active == "active"
        first_of_run = len(lines) - len(systemd.last_run(lines))
        run = lines[first_of_run:] if not running else lines[-5:]
        for i, line in enumerate(lines):
            yield Event(
                got.host,
                "journal",
                unit,
                line.message,
                {"unit": unit, "line": line.text},
                f"journalctl -u {unit} on {got.host}: {line.text}",
                line.time,
                last_run=not running and i >= first_of_run,
                stale=i < first_of_run,
            )
        # Units not running, and running ones that will not come back after a reboot.
        if state is None or not state.installed:
            continue
        if running and state.load != "masked" and state.file_state != "disabled":
            continue
        status = f"{state.active} ({state.sub})"
        tail = "\n".join(line.text for line in run[-5:])
        yield Event(
            got.host,
            "unit",
            unit,
            f"{state.load} {status} {state.file_state}",
            {
                "unit": unit,
                "state": status,
                "load": state.load,
                "last_error": systemd.last_error(run),
            },
            f"{unit} on {got.host}: {state.load}, {status}, {state.file_state or 'no unit file'}"
            + (f"\n{tail}" if tail else ""),
        )


def _clock_events(cluster: Cluster, collected: Mapping[str, Collected]) -> Iterator[Event]:
    offsets = {
        name: got.clock_offset
        for name, got in collected.items()
        if got.reachable and got.clock_offset is not None
    }
    if len(offsets) < 2:
        return
    # The hosts' median is the reference with three or more hosts; with two, this machine's
    # clock decides which one is off.
    reference = statistics.median(offsets.values()) if len(offsets) >= 3 else 0.0
    listed = ", ".join(
        f"{h.name} {offsets[h.name]:+.1f} s" for h in cluster.hosts if h.name in offsets
    )
    for name, offset in offsets.items():
        skew = offset - reference
        if abs(skew) - collected[name].clock_error > preflight.MAX_CLOCK_SKEW_SECONDS:
            yield Event(
                name,
                "condition",
                "clock_skew",
                f"{skew:+.1f}",
                {"skew": f"{skew:+.1f}", "offsets": f"relative to this machine: {listed}"},
                f"clock offsets relative to this machine: {listed}",
            )


def _disk_events(cluster: Cluster, got: Collected) -> Iterator[Event]:
    usages = got.read(host_probes.disk(disk_paths(cluster, cluster.host(got.host))))
    if usages is None:
        return
    seen: set[tuple[str, str]] = set()
    for usage in usages:
        if usage.kind == "k":
            full = usage.use_pct >= DISK_MAX_USE_PCT or usage.free < DISK_MIN_FREE_MB * 1024
            what, free = "space", f"{usage.free // 1024} MB"
        else:
            full = usage.use_pct >= DISK_MAX_USE_PCT and usage.total > 0
            what, free = "inodes", f"{usage.free} inodes"
        if not full or (usage.mount, what) in seen:
            continue
        seen.add((usage.mount, what))
        yield Event(
            got.host,
            "condition",
            "disk_full",
            f"{usage.mount} {usage.use_pct}%",
            {
                "path": usage.path,
                "mount": usage.mount,
                "use_pct": str(usage.use_pct),
                "free": free,
                "what": what,
            },
            f"df on {got.host}: {usage.path} on {usage.mount}: {usage.use_pct}% of {what} used,"
            f" {free} free",
        )


def _firewall_events(cluster: Cluster, got: Collected) -> Iterator[Event]:
    host = cluster.host(got.host)
    ports = facts.open_ports(cluster, host)
    if got.read(firewalld.running()):
        zone = got.read(firewalld.zone())
        listed = zone.listing if zone else ""
        opened = zone.opened if zone else frozenset()
        closed = [p for p in ports if p not in opened]
        if (zone and zone.accept_all) or not closed:
            return
        yield Event(
            host.name,
            "condition",
            "firewalld_blocks",
            " ".join(closed),
            {"ports": ", ".join(closed), "add_ports": " ".join(f"--add-port={p}" for p in closed)},
            f"firewall-cmd --list-all on {host.name}:\n{truncate(listed)}",
        )
        return
    firewall = got.read(iptables.rules())
    if firewall is None:
        return
    sources = [h.ip for h in cluster.hosts if h.name != host.name] or [host.ip]
    blocked = iptables.blocked_ports(firewall, ports, host.ip, sources)
    by_rule: dict[str, list[str]] = {}
    for port, rule in blocked.items():
        by_rule.setdefault(rule.line if rule else "", []).append(port)
    for line, rule_ports in by_rule.items():
        rule_text = line or ":INPUT DROP (the chain's policy)"
        if line and re.search(r"--dports? ", line):
            args = "-D" + line[2:]  # a rule aimed at these ports: delete it
        else:
            # A catch-all: accept the ports before it instead of opening everything.
            by_proto: dict[str, list[str]] = {}
            for spec in rule_ports:
                number, _, proto = spec.partition("/")
                by_proto.setdefault(proto, []).append(number)
            args = " && iptables ".join(
                f"-I INPUT -p {proto} -m multiport --dports {','.join(numbers)} -j ACCEPT"
                for proto, numbers in by_proto.items()
            )
        yield Event(
            host.name,
            "condition",
            "iptables_blocks",
            rule_text,
            {"ports": ", ".join(rule_ports), "rule": rule_text, "iptables_args": args},
            f"iptables-save on {host.name}: {rule_text}",
        )


_EL_IDS = set(preflight.SUPPORTED_FAMILIES["redhat"])


def _selinux_events(cluster: Cluster, got: Collected) -> Iterator[Event]:
    if got.read(host_probes.selinux()) != "Enforcing":
        return
    ids = got.read(host_probes.os_release()) or set()
    if ids & _EL_IDS or cluster.settings.k8s_os_family == "redhat":
        yield Event(
            got.host,
            "condition",
            "selinux_enforcing",
            "Enforcing",
            {"mode": "enforcing"},
            f"getenforce on {got.host}: Enforcing",
        )


def _flannel_events(
    cluster: Cluster, collected: Mapping[str, Collected], report: Report
) -> Iterator[Event]:
    key_check = next(
        (c for c in report.checks if c.check == "flannel:network-key" and c.status == "fail"),
        None,
    )
    if key_check is None or "is missing from etcd" not in key_check.detail:
        return
    prefix = cluster.settings.flannel_etcd_prefix
    for member in [key_check.host, *cluster.etcd]:
        got = collected.get(member)
        url = facts.etcd_endpoint(cluster, cluster.host(member))
        found = got.read(etcd.config_search(url)) if got else None
        if found is None:
            continue
        for key, value in found:
            other = key.removesuffix("/config")
            if other == prefix or not key.endswith("/config") or '"Network"' not in value:
                continue
            yield Event(
                key_check.host,
                "condition",
                "flannel_key_other_prefix",
                other,
                {"other_prefix": other, "other_value": value},
                f"etcd (read on {member}): {key} = {value}",
            )
        return


def _member_events(cluster: Cluster, collected: Mapping[str, Collected]) -> Iterator[Event]:
    """Inventory etcd hosts that no reachable member lists (by name or peer URL)."""
    listed: set[str] = set()
    seen_from: list[str] = []
    for member in cluster.etcd:
        got = collected.get(member)
        url = facts.etcd_endpoint(cluster, cluster.host(member))
        found = got.read(etcd.members(url)) if got else None
        if found is None or found.members is None:
            continue
        seen_from.append(member)
        for item in found.members:
            listed.add(item.name)
            listed.update(item.peer_urls)
    if not seen_from:
        return
    for name in cluster.etcd:
        host = cluster.host(name)
        if name in listed or facts.etcd_peer_url(cluster, host) in listed:
            continue
        yield Event(
            name,
            "condition",
            "etcd_member_missing",
            name,
            {"member": name, "seen_from": ", ".join(seen_from)},
            f"etcdctl member list on {', '.join(seen_from)} does not list {name}",
        )


def events(
    cluster: Cluster,
    collected: Mapping[str, Collected],
    report: Report,
    drifts: Sequence[Drift],
    since: str,
) -> list[Event]:
    """Every event of the cluster; `since` is the journal window the hosts were asked for."""
    found: list[Event] = []
    for host in cluster.hosts:
        got = collected.get(host.name)
        if got is None:
            continue
        if not got.reachable:
            error = got.facts.error or "not collected"
            found.append(Event(host.name, "ssh", "ssh", error, {"error": error}, error))
            continue
        found += _host_events(cluster, got, since)
        found += _disk_events(cluster, got)
        found += _firewall_events(cluster, got)
        found += _selinux_events(cluster, got)
        for name, output in got.facts.outputs.items():
            found.append(Event(host.name, "output", name, output.text, {"probe": name}))
    found += _clock_events(cluster, collected)
    found += _flannel_events(cluster, collected, report)
    found += _member_events(cluster, collected)
    for check in report.checks:
        if check.status == "fail" and check.check != "ssh":
            found.append(
                Event(
                    check.host,
                    "check",
                    check.check,
                    check.detail,
                    {"check": check.check, "detail": check.detail},
                    f"verify {check.check} on {check.host}: {check.detail}",
                )
            )
    for d in drifts:
        evidence = truncate(d.diff) if d.diff else f"{d.path}: No such file or directory"
        found.append(
            Event(
                d.host,
                "condition",
                "drift",
                f"{d.state} {d.path}",
                {
                    "path": d.path,
                    "state": d.state,
                    "diff_stat": diff_stat(d.diff) if d.diff else "missing",
                    "file_component": d.component,
                },
                evidence,
            )
        )
    return found
