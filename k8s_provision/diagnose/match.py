"""Events into findings: each signature's matches tried on every event, its templates filled
with the inventory's values for the host at fault, findings deduplicated, suppressed and
ranked; and the findings as plain text."""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from k8s_provision import facts, render
from k8s_provision.diagnose.events import Event, truncate
from k8s_provision.diagnose.redact import redact
from k8s_provision.diagnose.signatures import SEVERITIES, Match, Signature
from k8s_provision.model import Cluster, Host

# Sources whose text can name several problems at once (every regex match is a finding).
_MULTI_MATCH_SOURCES = ("check", "output", "condition")


@dataclass(frozen=True)
class Finding:
    host: str
    component: str
    id: str
    severity: str
    rank: int
    diagnosis: str
    fix: tuple[str, ...]
    evidence: str
    observer: str = ""  # the host whose output showed it, when that is not `host`

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "component": self.component,
            "id": self.id,
            "severity": self.severity,
            "diagnosis": self.diagnosis,
            "fix": list(self.fix),
            "evidence": self.evidence,
        }


def host_vars(
    cluster: Cluster,
    host: Host,
    *,
    inventory: str,
    since: str = "-1h",
    healthy: Sequence[str] = (),
) -> dict[str, str]:
    """The placeholders of COMMON_VARS for `host` (healthy: etcd members known to be healthy,
    preferred for commands that must run on a working member)."""
    s = cluster.settings
    ctx = render.host_context(cluster, host.name)
    others = [m for m in cluster.etcd if m != host.name]
    healthy_member = next(
        (m for m in healthy if m != host.name), others[0] if others else host.name
    )
    api_url = facts.api_url(cluster)
    conn = host.connection
    return {
        "host": host.name,
        "ip": host.ip,
        "address": host.address,
        "ssh_port": str(conn.port or 22),
        "ssh_user": conn.user or "root",
        "key_file": conn.private_key_file or "~/.ssh/id_rsa",
        "inventory": inventory,
        "since": shlex.quote(since),
        "prefix": s.flannel_etcd_prefix,
        "network": s.flannel_network,
        "backend": s.flannel_backend,
        "network_json": str(ctx["flannel_network_json"]),
        "endpoints": str(ctx["etcd_endpoints"]),
        "client_port": str(s.etcd_client_port),
        "peer_port": str(s.etcd_peer_port),
        "member_url": facts.etcd_client_url(cluster, host),
        "peer_url": facts.etcd_peer_url(cluster, host),
        "first_etcd": cluster.etcd[0],
        "healthy_member": healthy_member,
        "healthy_member_url": facts.etcd_client_url(cluster, cluster.host(healthy_member)),
        "data_dir": str(ctx["etcd_data_dir"]),
        "etcd_config_path": str(ctx["etcd_config_path"]),
        "flanneld_config_path": str(ctx["flanneld_config_path"]),
        "master": cluster.master.name,
        "master_ip": cluster.master.ip,
        "api_port": str(s.kube_api_port),
        "api_url": api_url,
        "kubelet_port": str(s.kubelet_port),
        "node_name": host.kube_node_name,
    }


_GLOB = re.compile(r"[*?\[]")


def _resolve_host(cluster: Cluster, name: str) -> str | None:
    for host in cluster.hosts:
        if name in (host.name, host.address, host.ip, host.kube_node_name):
            return host.name
    return None


def _accepts(match: Match, event: Event, now: float | None, passed: frozenset[str]) -> bool:
    if match.source != event.source or not fnmatch.fnmatchcase(event.name, match.name):
        return False
    if event.source != "journal":
        return True
    if match.window is None:
        return event.last_run
    if event.stale or (match.cleared_by and passed.issuperset(match.cleared_by)):
        return False
    return now is not None and event.time is not None and event.time >= now - match.window


def _groups(match: Match, event: Event) -> list[dict[str, str]]:
    """The named groups of each regex match in the event's text ([{}] without a regex)."""
    if match.regex is None:
        return [{}]
    if event.source in _MULTI_MATCH_SOURCES:
        return [m.groupdict("") for m in match.regex.finditer(event.text)]
    one = match.regex.search(event.text)
    return [one.groupdict("")] if one else []


def match_signatures(
    cluster: Cluster,
    signatures: Sequence[Signature],
    found: Sequence[Event],
    *,
    inventory: str,
    since: str = "-1h",
    host_times: Mapping[str, float | None] | None = None,
    healthy: Sequence[str] = (),
    passed: frozenset[str] = frozenset(),
) -> list[Finding]:
    """Findings, deduplicated (one per signature, host, component and diagnosis; the latest
    evidence wins), without those suppressed, most severe and most fundamental first.
    `passed`: the verify checks that passed on every host they ran on."""
    host_times = host_times or {}
    common = {
        h.name: host_vars(cluster, h, inventory=inventory, since=since, healthy=healthy)
        for h in cluster.hosts
    }
    members = {
        f"{cluster.host(name).ip}:{cluster.settings.etcd_client_port}" for name in cluster.etcd
    }
    # Each signature looks only at the events its matches can accept (by source, and by name
    # where the match names one without a pattern), in the order they were found.
    indexed: dict[tuple[str, str], list[int]] = {}
    for index, event in enumerate(found):
        indexed.setdefault((event.source, "*"), []).append(index)
        indexed.setdefault((event.source, event.name), []).append(index)
    findings: dict[tuple[str, str, str, str], Finding] = {}
    for sig in signatures:
        keys = {(m.source, "*" if _GLOB.search(m.name) else m.name) for m in sig.matches}
        candidates = sorted({i for key in keys for i in indexed.get(key, ())})
        for event in (found[i] for i in candidates):
            now = host_times.get(event.host)
            match, groups = next(
                (
                    (m, g)
                    for m in sig.matches
                    if _accepts(m, event, now, passed) and (g := _groups(m, event))
                ),
                (None, []),
            )
            if match is None:
                continue
            for group in groups:
                if match.not_member is not None and group.get(match.not_member) in members:
                    continue
                values = {**common[event.host], **event.vars, **group}
                host = observer = event.host
                evidence = event.evidence or truncate(event.text)
                if match.host:
                    target = _resolve_host(cluster, match.host.format_map(values))
                    if target is not None and target != host:
                        evidence = f"seen on {host}: {evidence}"
                        host = target
                values = {**values, **common[host]}
                finding = Finding(
                    host=host,
                    component=sig.component.format_map(values),
                    id=sig.id,
                    severity=sig.severity,
                    rank=sig.rank,
                    diagnosis=redact(sig.diagnosis.format_map(values)),
                    fix=tuple(redact(f.format_map(values)) for f in sig.fix),
                    evidence=redact(evidence),
                    observer="" if observer == host else observer,
                )
                findings[(sig.id, host, finding.component, finding.diagnosis)] = finding
    by_id = {s.id: s for s in signatures}
    present = {(f.host, f.component, f.id) for f in findings.values()}
    on_host = {(f.host, f.id) for f in findings.values()}
    kept = [
        f
        for f in findings.values()
        if not any((f.host, f.component, s) in present for s in by_id[f.id].suppressed_by)
        and not any((f.observer, s) in on_host for s in by_id[f.id].observer_suppressed_by)
    ]
    order = {h.name: i for i, h in enumerate(cluster.hosts)}
    kept.sort(
        key=lambda f: (
            SEVERITIES.index(f.severity),
            f.rank,
            order.get(f.host, 0),
            f.id,
            f.diagnosis,
        )
    )
    return kept


def findings_text(findings: Sequence[Finding]) -> str:
    """The findings as plain text: one line naming severity, host, component and id, then the
    diagnosis, the evidence and the fix."""
    if not findings:
        return "no problems found\n"
    blocks = []
    for i, f in enumerate(findings, 1):
        lines = [f"{i}. {f.severity.upper()} {f.host} {f.component} [{f.id}]", f"   {f.diagnosis}"]
        evidence = f.evidence.splitlines()
        if evidence:
            lines.append(f"   evidence: {evidence[0]}")
            lines += [f"             {line}" for line in evidence[1:]]
        lines.append("   fix:")
        lines += [f"     {line}" for line in f.fix]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
