"""What configuration each service runs with, judged from state on the host rather than from
what one run changed: when k8s-provision (re)starts a service it records, on the host, the
SHA-256 of the config files the service reads. A running service whose record differs from the
files on disk predates its configuration, whichever run wrote the files and however that run
ended; the roles restart it (etcd one member at a time) and verify reports it (config:stale).

The roles (through the collection filters in plugins/filter/service_state.py) and verify use
the same scripts below, so both judge by the same bytes."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from k8s_provision import facts
from k8s_provision.model import Cluster, Host
from k8s_provision.render import planned_files
from k8s_provision.report import Check

APPLIED_DIR = "/var/lib/k8s-provision/applied"
MARK = "config-state"
NO_RECORD = "-"

# The components (render.PlannedFile.component) whose files each unit reads: every kube unit
# reads the shared /etc/kubernetes/config (component "kubernetes") and its own file. With
# k8s_security tls the PKI files count too (pki.HostFile.component: etcd, flannel, master,
# node), so a renewed certificate restarts its daemon the way a changed file does (etcd one
# member at a time).
UNIT_COMPONENTS: Mapping[str, tuple[str, ...]] = {
    "etcd": ("etcd",),
    "flanneld": ("flanneld", "flannel"),
    "kube-apiserver": ("kubernetes", "kube-apiserver", "master"),
    "kube-controller-manager": ("kubernetes", "kube-controller-manager", "master"),
    "kube-scheduler": ("kubernetes", "kube-scheduler", "master"),
    "kubelet": ("kubernetes", "kubelet", "node"),
    "kube-proxy": ("kubernetes", "kube-proxy", "node"),
}
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ConfigState:
    applied: str  # the record written when the service was last (re)started, or NO_RECORD
    on_disk: str  # SHA-256 of the unit's config files as they are now
    active: str  # `systemctl is-active`: active, inactive, failed, ...

    @property
    def stale(self) -> bool:
        return self.applied != self.on_disk


def unit_paths(files: Iterable[tuple[str, str]], units: Iterable[str]) -> dict[str, list[str]]:
    """{unit: its config paths in planned order} from (dest, component) pairs, for the units
    that have config files among them."""
    pairs = list(files)
    found = {
        unit: [dest for dest, component in pairs if component in UNIT_COMPONENTS[unit]]
        for unit in units
        if unit in UNIT_COMPONENTS
    }
    return {unit: paths for unit, paths in found.items() if paths}


def host_unit_paths(cluster: Cluster, host: Host) -> dict[str, list[str]]:
    """As the roles compute it from `k8s.files + k8s.facts.pki_files`, for the units `host`
    runs (a node also has the shared /etc/kubernetes/config the master's units read)."""
    from k8s_provision.pki.plan import host_files  # pki imports render, which imports this

    pairs = [(f.dest, f.component) for f in planned_files(cluster, host)]
    pairs += [(f.dest, f.component) for f in host_files(cluster, host)]
    return unit_paths(pairs, facts.host_units(host))


def state_script(paths_by_unit: Mapping[str, Sequence[str]], *, active: bool = True) -> str:
    """POSIX sh printing `config-state UNIT APPLIED ON-DISK ACTIVE` per unit (a missing file
    counts as empty, so a deleted config also differs from the record). It runs in every
    verify and on every role run, so it forks little: one systemctl for all units, then a
    cat and a sha256sum per unit; the rest is shell built-ins. Without `active` ACTIVE is
    `unknown` and systemctl is not asked: the probes read unit states with a probe of their
    own, and on a lab host each systemctl costs more than the rest of the script."""
    units = list(paths_by_unit)
    if not units:
        return ":"
    listed = " ".join(shlex.quote(f"{u}.service") for u in units)
    lines = [f"set -- $(systemctl is-active -- {listed} 2>/dev/null)" if active else "set --"]
    for unit in units:
        record = shlex.quote(f"{APPLIED_DIR}/{unit}")
        files = " ".join(shlex.quote(p) for p in paths_by_unit[unit])
        lines.append(
            f"a=; if [ -r {record} ]; then read -r a < {record}; fi;"
            f" h=$(cat -- {files} 2>/dev/null | sha256sum);"
            f" printf '{MARK} %s %s %s %s\\n' {shlex.quote(unit)} \"${{a:-{NO_RECORD}}}\""
            f' "${{h%% *}}" "${{1:-unknown}}"; if [ $# -gt 0 ]; then shift; fi'
        )
    return "; ".join(lines)


def parse_states(text: str) -> dict[str, ConfigState]:
    states = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 5 and words[0] == MARK:
            states[words[1]] = ConfigState(words[2], words[3], words[4])
    return states


def record_script(unit: str, on_disk: str) -> str:
    """POSIX sh recording that `unit` now runs with the files whose SHA-256 is `on_disk`;
    prints `recorded` only when the record changed, so a converged rerun changes nothing."""
    if unit not in UNIT_COMPONENTS or not _SHA256.fullmatch(on_disk):
        raise ValueError(f"refusing to record {unit!r} with {on_disk!r}")
    record = f"{APPLIED_DIR}/{unit}"
    return (
        f'test "$(cat {record} 2>/dev/null)" = {on_disk} ||'
        f" {{ mkdir -p {APPLIED_DIR} && echo {on_disk} > {record} && echo recorded; }}"
    )


def config_check(
    host: str, active: Mapping[str, bool], paths: Mapping[str, Sequence[str]], output: str | None
) -> Check | None:
    """verify's `config:stale` check over the running units of `host` that read config files;
    None when none runs."""
    running = [unit for unit in paths if active.get(unit)]
    if not running:
        return None
    if output is None:
        # Only a collector without this probe gets here: verify's own treats a missing probe
        # output as a failed host already.
        return Check(host, "config:stale", "skip", "not collected")
    states = parse_states(output)
    stale = [
        u for u in running if u in states and states[u].stale and states[u].applied != NO_RECORD
    ]
    unknown = [u for u in running if u not in states or states[u].applied == NO_RECORD]
    if stale:
        listed = "; ".join(f"{u} (reads {', '.join(paths[u])})" for u in stale)
        return Check(
            host,
            "config:stale",
            "fail",
            f"running with an older configuration than on disk, changed after they started:"
            f" {listed}",
        )
    if unknown:
        return Check(
            host,
            "config:stale",
            "warn",
            f"no record of the configuration {', '.join(unknown)} started with;"
            " `k8s-provision up` restarts them once to record it",
        )
    return Check(
        host, "config:stale", "pass", f"{', '.join(running)} run with their files as on disk"
    )
