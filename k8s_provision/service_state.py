"""What configuration each service runs with, judged from state on the host rather than from
what one run changed: when k8s-provision (re)starts a service it records, on the host, a
digest of the config files the service reads (the SHA-256 of each file's path and SHA-256, so
one `sha256sum` reads every file of a host). A running service whose record differs from the
files on disk predates its configuration, whichever run wrote the files and however that run
ended; so does one whose files changed after it last started (restarted by hand or by its
crash loop while a file was edited, then the file put back: the record matches again, the
process does not). "Changed" is the files' ctime, which a write, a rename or a chmod sets and
nobody can set back (a backup moved into place keeps its old mtime). The roles restart it (etcd
one member at a time) and verify reports it (config:stale).

The roles (through the collection filters in plugins/filter/service_state.py) and verify use
the same scripts below, so both judge by the same bytes.

Records written before this form (the SHA-256 of the files' bytes run together, which took a
`cat` and a `sha256sum` per unit) are still read: the script hashes a unit's files that way only
while its record has that form, and the roles replace such a record that still matches, without
a restart."""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from k8s_provision import facts
from k8s_provision.model import Cluster, Host
from k8s_provision.probes import systemd
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
RECORD_PREFIX = "files-sha256:"  # a record of this form; an older one is a bare SHA-256
_RECORD = re.compile(re.escape(RECORD_PREFIX) + r"[0-9a-f]{64}")
# `sha256sum`'s line for a file (a path with a backslash or a newline would be escaped: paths
# are validated, none has one).
_DIGEST = re.compile(r"^(?P<sha>[0-9a-f]{64})  (?P<path>.+)$")
CLOCK = "config-clock"
CTIME = "config-ctime"
FILE = "config-file"
UNITS_MARK = "config-units"
# Seconds a file's ctime may pass the service's start before it counts as changed after it.
# The start is read in monotonic time and placed on the wall clock through `date` and
# /proc/uptime (10 ms); a suspend or a backward clock step since boot makes it read early.
CTIME_SLACK = 0.5


@dataclass(frozen=True)
class ConfigState:
    applied: str  # the record written when the service was last (re)started, or NO_RECORD
    on_disk: str  # the record the unit's config files make as they are now (`files_record`)
    active: str  # `systemctl is-active`: active, inactive, failed, ...
    changed_after_start: bool = False  # a file's ctime is later than the service's start
    # With a record of the older form: the files' bytes hashed that way ("" otherwise).
    older_on_disk: str = ""

    @property
    def stale(self) -> bool:
        matches = self.applied == self.on_disk or (
            bool(self.older_on_disk) and self.applied == self.older_on_disk
        )
        return not matches or self.changed_after_start


def files_record(paths: Sequence[str], digests: Mapping[str, str]) -> str:
    """The record of a unit reading `paths`, whose SHA-256s are `digests` (a missing or
    unreadable file has none: it differs from any file, and its path still counts)."""
    listed = "".join(f"{digests.get(path, '-')}  {path}\n" for path in paths)
    return RECORD_PREFIX + hashlib.sha256(listed.encode()).hexdigest()


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
    """POSIX sh printing the host's clock (`config-clock EPOCH UPTIME`), each existing file's
    ctime (`config-ctime DATE TIME ZONE PATH`) and SHA-256 (`sha256sum`'s lines), then per unit
    `config-state UNIT APPLIED OLDER ACTIVE` and a `config-file UNIT PATH` line for each of its
    files. OLDER is `-` unless the unit's record has the older form: then the SHA-256 of its
    files run together (a missing file counts as empty). With `active`, one
    systemctl first prints each unit's `ActiveState` and start (between `config-units` lines);
    without it ACTIVE is `unknown`: the probes read unit states and starts with a probe of their
    own, and on a lab host each systemctl costs more than the rest of the script. It runs in
    every verify and on every role run, so it forks little: `date`, one `stat` and one
    `sha256sum` for all files; the rest is shell built-ins."""
    units = list(paths_by_unit)
    if not units:
        return ":"
    every = " ".join(
        shlex.quote(p) for p in dict.fromkeys(p for u in units for p in paths_by_unit[u])
    )
    lines = [
        f'read -r u _ < /proc/uptime; printf \'{CLOCK} %s %s\\n\' "$(date +%s.%N)" "$u"',
        # To the nanosecond on any coreutils: "2026-12-02 07:52:28.626941317 +0000".
        f"stat -L -c '{CTIME} %z %n' -- {every} 2>/dev/null",
        f"sha256sum -- {every} 2>/dev/null",
    ]
    if active:
        listed = " ".join(shlex.quote(f"{u}.service") for u in units)
        lines.append(
            f"echo {UNITS_MARK}; systemctl show -p ActiveState -p {systemd.START_PROPERTY}"
            f" -- {listed} 2>/dev/null; echo {UNITS_MARK}"
        )
    for unit in units:
        record = shlex.quote(f"{APPLIED_DIR}/{unit}")
        listed = " ".join(shlex.quote(p) for p in paths_by_unit[unit])
        each_file = shlex.quote(f"{FILE} {unit} %s\\n")
        lines.append(
            f"a=; if [ -r {record} ]; then read -r a < {record}; fi;"
            f' case "$a" in {RECORD_PREFIX}*|"") h=-;;'
            f" *) h=$(cat -- {listed} 2>/dev/null | sha256sum);; esac;"
            f" printf '{MARK} %s %s %s unknown\\n' {shlex.quote(unit)} \"${{a:-{NO_RECORD}}}\""
            f' "${{h%% *}}"; printf {each_file} {listed}'
        )
    return "; ".join(lines)


def parse_states(text: str, started: Mapping[str, int] | None = None) -> dict[str, ConfigState]:
    """The script's output; `started`: each unit's start as another probe read it
    (the script reads its own with `active`)."""
    clock: tuple[float, float] | None = None
    ctimes: dict[str, float] = {}
    digests: dict[str, str] = {}
    files: dict[str, list[str]] = {}
    rows: list[list[str]] = []
    # A role's `raw` reads through a pty: its lines end in \r\n.
    lines = [line.rstrip() for line in text.splitlines()]
    for line in lines:
        words = line.split()
        if len(words) == 3 and words[0] == CLOCK:
            try:
                clock = (float(words[1]), float(words[2]))
            except ValueError:
                clock = None
        elif len(words) >= 5 and words[0] == CTIME:
            when = _epoch(*words[1:4])
            if when is not None:
                ctimes[line.split(maxsplit=4)[4]] = when
        elif len(words) >= 3 and words[0] == FILE:
            files.setdefault(words[1], []).append(line.split(maxsplit=2)[2])
        elif len(words) == 5 and words[0] == MARK:
            rows.append(words)
        elif digest := _DIGEST.match(line):
            digests[digest["path"]] = digest["sha"]
    # With `active`: systemctl's blocks between the two `config-units` lines, in row order.
    marks = [i for i, line in enumerate(lines) if line == UNITS_MARK][:2]
    block = "\n".join(lines[marks[0] + 1 : marks[1]]) if len(marks) == 2 else ""
    shown = systemd.parse_units(block, [w[1] for w in rows])
    starts = {**(started or {}), **{u: s.started for u, s in shown.items()}}
    states = {}
    for words in rows:
        unit, applied, older, active = words[1:5]
        active = shown[unit].active if unit in shown else active
        paths = files.get(unit, [])
        changed = [ctimes[path] for path in paths if path in ctimes]
        states[unit] = ConfigState(
            applied,
            files_record(paths, digests),
            active,
            _changed_after(changed, starts.get(unit, 0), clock),
            older if _SHA256.fullmatch(older) else "",
        )
    return states


def _epoch(day: str, clock: str, zone: str) -> float | None:
    """`stat -c %z`'s time as seconds since the epoch (None when unreadable)."""
    whole, _, fraction = clock.partition(".")
    try:
        moment = datetime.strptime(f"{day} {whole} {zone}", "%Y-%m-%d %H:%M:%S %z")
        return moment.timestamp() + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)
    except ValueError:
        return None


def _changed_after(
    ctimes: Sequence[float], start_us: int, clock: tuple[float, float] | None
) -> bool:
    if not ctimes or start_us <= 0 or clock is None:
        return False
    epoch, uptime = clock
    started_at = epoch - uptime + start_us / 1_000_000
    return max(ctimes) > started_at + CTIME_SLACK


def record_script(unit: str, on_disk: str) -> str:
    """POSIX sh recording that `unit` now runs with the files whose record is `on_disk`
    (`files_record`); prints `recorded` only when the record changed, so a converged rerun
    changes nothing."""
    if unit not in UNIT_COMPONENTS or not _RECORD.fullmatch(on_disk):
        raise ValueError(f"refusing to record {unit!r} with {on_disk!r}")
    record = f"{APPLIED_DIR}/{unit}"
    return (
        f'test "$(cat {record} 2>/dev/null)" = {on_disk} ||'
        f" {{ mkdir -p {APPLIED_DIR} && echo {on_disk} > {record} && echo recorded; }}"
    )


def config_check(
    host: str,
    active: Mapping[str, bool],
    paths: Mapping[str, Sequence[str]],
    output: str | None,
    started: Mapping[str, int] | None = None,
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
    states = parse_states(output, started)
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
