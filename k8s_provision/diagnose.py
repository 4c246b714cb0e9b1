"""Diagnose a cluster: collect everything an operator looks at when it misbehaves into a support
bundle, and name each fault with its host and the fix.

Three stages, so the logic is testable without hosts:
- `collect` opens one SSH session per host (all hosts in parallel) and runs two commands there:
  ONE batch script with verify's probes plus diagnose's own (unit status and journal,
  configuration files, network, firewall, SELinux, disk, memory, etcd, flannel keys, kubectl),
  all in parallel on the host, each under `timeout`; then `date` on the open session, for
  clock skew (a round trip of milliseconds, not the seconds the collection takes).
- `evaluate` is pure: verify's checks on the same outputs, the files compared with `render`,
  structured conditions (drift, clock skew, full disk, firewall, ...) and the journal lines all
  become events, which the signatures of `signatures.yml` turn into ranked findings.
- `write_bundle` writes the tar.gz: a directory per host and a manifest, secrets redacted.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import io
import ipaddress
import json
import os
import re
import shlex
import statistics
import string
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from k8s_provision import __version__, preflight, render, ssh, verify
from k8s_provision.errors import ProvisionError, UsageError
from k8s_provision.model import Cluster, Host
from k8s_provision.report import Report
from k8s_provision.verify import HostFacts, Output, Probe

SIGNATURES_PATH = Path(__file__).with_name("signatures.yml")
SEVERITIES = ("error", "warning")
JOURNAL_LINES = 5000  # per unit: enough for an hour of a failing daemon, bounded for big clusters
SCRIPT_TIMEOUT = verify.PROBE_TIMEOUT + 40.0  # probes run in parallel; then the output travels
CLOCK_TIMEOUT = 10.0
DISK_MIN_FREE_MB = 100
DISK_MAX_USE_PCT = 95
EVIDENCE_LINES = 30
REDACTED = "<redacted>"

# Placeholders every finding can use, filled from the inventory for the finding's host.
COMMON_VARS = (
    "host", "ip", "address", "ssh_port", "ssh_user", "key_file", "inventory", "since", "prefix",
    "network", "backend", "network_json", "endpoints", "client_port", "peer_port", "member_url",
    "peer_url", "first_etcd", "healthy_member", "healthy_member_url", "data_dir",
    "etcd_config_path", "flanneld_config_path", "master", "master_ip", "api_port", "api_url",
    "kubelet_port", "node_name",
)  # fmt: skip
SOURCE_VARS: dict[str, tuple[str, ...]] = {
    "ssh": ("error",),
    "unit": ("unit", "state", "load", "last_error"),
    "journal": ("unit", "line"),
    "check": ("check", "detail"),
    "output": ("probe",),
    "condition": (),
}
CONDITION_VARS: dict[str, tuple[str, ...]] = {
    "drift": ("path", "state", "diff_stat", "file_component"),
    "clock_skew": ("skew", "offsets"),
    "disk_full": ("path", "mount", "use_pct", "free", "what"),
    "firewalld_blocks": ("ports", "add_ports"),
    "iptables_blocks": ("ports", "rule", "iptables_args"),
    "selinux_enforcing": ("mode",),
    "flannel_key_other_prefix": ("other_prefix", "other_value"),
    "etcd_member_missing": ("member", "seen_from"),
}
# Sources whose text can name several problems at once (every regex match is a finding).
_MULTI_MATCH_SOURCES = ("check", "output", "condition")
# firewalld services that open a port diagnose needs (firewall-cmd --list-all names them).
_FIREWALLD_SERVICES = {
    "etcd-client": ("2379/tcp",),
    "etcd-server": ("2380/tcp",),
    "kubelet": ("10250/tcp",),
}
_FLANNEL_PORTS = {"udp": "8285/udp", "vxlan": "8472/udp"}


# ---------------------------------------------------------------------------------------------
# Signatures (data: signatures.yml)


@dataclass(frozen=True)
class Match:
    """One way a signature recognises its fault."""

    source: str
    name: str = "*"
    regex: re.Pattern[str] | None = None
    window: float | None = None  # journal: None = last run of a unit not running now
    host: str | None = None  # a template naming the host at fault, when not the observer

    def variables(self) -> set[str]:
        names = set(SOURCE_VARS[self.source])
        if self.source == "condition":
            names |= set(CONDITION_VARS.get(self.name, ()))
        if self.regex is not None:
            names |= set(self.regex.groupindex)
        return names


@dataclass(frozen=True)
class Signature:
    id: str
    component: str
    severity: str
    rank: int
    matches: tuple[Match, ...]
    diagnosis: str
    fix: tuple[str, ...]
    suppressed_by: frozenset[str] = frozenset()


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _parse_match(sig_id: str, raw: Mapping[str, Any]) -> Match:
    source = str(raw.get("source", ""))
    if source not in SOURCE_VARS:
        raise ValueError(f"{sig_id}: unknown source {source!r} (one of {', '.join(SOURCE_VARS)})")
    name = str(raw.get("name", "*"))
    if source == "condition" and name not in CONDITION_VARS:
        raise ValueError(f"{sig_id}: unknown condition {name!r}")
    window = raw.get("window")
    if window is not None and (source != "journal" or not isinstance(window, int)):
        raise ValueError(f"{sig_id}: window is a number of seconds, for journal matches only")
    regex = re.compile(str(raw["regex"])) if "regex" in raw else None
    extra = set(raw) - {"source", "name", "regex", "window", "host"}
    if extra:
        raise ValueError(f"{sig_id}: unknown keys in match: {', '.join(sorted(extra))}")
    return Match(
        source, name, regex, float(window) if window is not None else None, raw.get("host")
    )


def parse_signatures(raw: Any) -> tuple[Signature, ...]:
    """Validate signatures.yml's content: every placeholder a template uses must be filled by
    every alternative of its match, so a finding can never fail to format."""
    signatures: list[Signature] = []
    for item in raw["signatures"]:
        sig_id = str(item["id"])
        severity = str(item["severity"])
        if severity not in SEVERITIES:
            raise ValueError(f"{sig_id}: severity must be one of {', '.join(SEVERITIES)}")
        alternatives = item["match"]
        if not isinstance(alternatives, list) or not alternatives:
            raise ValueError(f"{sig_id}: match must be a non-empty list")
        matches = tuple(_parse_match(sig_id, alt) for alt in alternatives)
        sig = Signature(
            id=sig_id,
            component=str(item["component"]),
            severity=severity,
            rank=int(item["rank"]),
            matches=matches,
            diagnosis=" ".join(str(item["diagnosis"]).split()),
            fix=tuple(str(line) for line in item["fix"]),
            suppressed_by=frozenset(str(s) for s in item.get("suppressed_by", [])),
        )
        available = set(COMMON_VARS) | set.intersection(*(m.variables() for m in matches))
        for template in (sig.component, sig.diagnosis, *sig.fix):
            unknown = _placeholders(template) - available
            if unknown:
                raise ValueError(
                    f"{sig_id}: placeholders {', '.join(sorted(unknown))} are not filled by"
                    f" every match of this signature: {template!r}"
                )
        for match in matches:
            unknown = _placeholders(match.host or "") - (set(COMMON_VARS) | match.variables())
            if unknown:
                raise ValueError(f"{sig_id}: host template uses unknown {sorted(unknown)}")
        signatures.append(sig)
    ids = [s.id for s in signatures]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate signature ids: {', '.join(duplicates)}")
    for sig in signatures:
        unknown_ids = sig.suppressed_by - set(ids)
        if unknown_ids:
            raise ValueError(f"{sig.id}: suppressed_by names unknown {sorted(unknown_ids)}")
    return tuple(signatures)


@functools.cache
def load_signatures(path: Path = SIGNATURES_PATH) -> tuple[Signature, ...]:
    try:
        return parse_signatures(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, re.error, yaml.YAMLError) as err:
        # A packaging bug, not the operator's: say which file and why.
        raise ProvisionError(f"{path}: invalid signature file: {err}") from err


# ---------------------------------------------------------------------------------------------
# Redaction


_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----", re.DOTALL
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
_ASSIGNMENT = re.compile(
    r"(?i)(?P<name>[\w.-]*(?:password|passwd|token|secret|key)[\w.-]*)(?P<quote>[\"']?)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s,;&\"'}]+)"
)


def _redact_assignment(match: re.Match[str]) -> str:
    value = match["value"]
    bare = value.strip("\"'")
    # A path is a file name or an etcd prefix (FLANNEL_ETCD_KEY=/atomic.io/network,
    # --service-account-key-file=/etc/...), never the secret itself: keep it for diagnosis.
    if not bare or bare.startswith("/") or bare == REDACTED:
        return match.group(0)
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['name']}{match['quote']}{match['sep']}{quote}{REDACTED}{quote}"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Hide secrets: known secret values anywhere (the etcd cluster token, a sudo password),
    private keys, bearer tokens, and the value of anything named password/token/secret/key."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _PRIVATE_KEY.sub("<redacted private key>", text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _ASSIGNMENT.sub(_redact_assignment, text)


def cluster_secrets(cluster: Cluster) -> tuple[str, ...]:
    password = ssh.become_password()
    return tuple(s for s in (cluster.settings.etcd_cluster_token, password) if s)


# ---------------------------------------------------------------------------------------------
# What is collected


def journal_since(since: str) -> str:
    """journalctl's --since value for the CLI's --since: a duration (30m, 1h, 2d) becomes a
    relative time on the host's own clock; a date ('2026-01-31 10:00') is passed as is."""
    match = re.fullmatch(r"(\d+)\s*(s|m|min|h|d)", since.strip())
    if match:
        # systemd's own spelling: "m" would also be minutes there, "min" cannot be misread.
        return f"-{match[1]}{'min' if match[2] == 'm' else match[2]}"
    if re.fullmatch(r"\d{4}-\d\d-\d\d( \d\d:\d\d(:\d\d)?)?", since.strip()):
        return since.strip()
    raise UsageError(
        f"--since {since!r}: give a duration (90s, 30m, 1h, 2d) or a date ('2026-01-31 10:00')"
    )


def needed_ports(cluster: Cluster, host: Host) -> list[str]:
    """Ports other cluster hosts reach on `host`, as the playbooks open them in firewalld."""
    s = cluster.settings
    ports: list[str] = []
    if host.is_etcd:
        ports += [f"{s.etcd_client_port}/tcp", f"{s.etcd_peer_port}/tcp"]
    if host.is_master:
        ports.append(f"{s.kube_api_port}/tcp")
    if host.is_node:
        ports.append(f"{s.kubelet_port}/tcp")
    if host.runs_flannel and s.flannel_backend in _FLANNEL_PORTS:
        ports.append(_FLANNEL_PORTS[s.flannel_backend])
    return ports


def _disk_paths(cluster: Cluster, host: Host) -> list[str]:
    paths = ["/", "/var/log"]
    if host.is_etcd:
        # The data dir's parent too: it is what fills up when the data dir is gone or new.
        data_dir = _data_dir(cluster, host)
        paths += [os.path.dirname(data_dir.rstrip("/")) or "/", data_dir]
    if host.is_node:
        paths.append("/var/lib/docker")
    return list(dict.fromkeys(paths))


def _data_dir(cluster: Cluster, host: Host) -> str:
    return str(render.host_context(cluster, host.name)["etcd_data_dir"])


# The daemon's syslog identifier(s) when it is not the unit's name (CentOS 7's docker runs
# dockerd-current; flanneld starts through the flanneld-start wrapper).
_IDENTIFIERS = {
    "docker": ("dockerd", "dockerd-current", "docker"),
    "flanneld": ("flanneld", "flanneld-start"),
}


def _journal_matches(unit: str) -> str:
    """journalctl's matches for a unit: what `-u` selects plus the daemon's own identifier.
    A daemon that exits at once is often logged without its unit (journald reads the unit
    from the process's cgroup, gone by then): `-u` alone misses exactly the line that says
    why it failed."""
    identifiers = " ".join(f"SYSLOG_IDENTIFIER={i}" for i in _IDENTIFIERS.get(unit, (unit,)))
    return f"_SYSTEMD_UNIT={unit}.service + UNIT={unit}.service + {identifiers}"


def diagnose_probes(cluster: Cluster, host: Host, since: str) -> list[Probe]:
    """Diagnose's own commands for `host` (verify's run alongside, see `probes_for`)."""
    s = cluster.settings
    probes: list[Probe] = []
    for unit in verify.host_units(host):
        probes += [
            Probe(f"status:{unit}", f"systemctl status --no-pager -l -n 20 -- {unit}.service"),
            Probe(
                f"journal:{unit}",
                f"journalctl {_journal_matches(unit)} --since={shlex.quote(since)} --no-pager"
                f" -o short-iso -n {JOURNAL_LINES}",
            ),
        ]
    for planned in render.planned_files(cluster, host):
        probes.append(Probe(f"file:{planned.dest}", f"cat -- {shlex.quote(planned.dest)}"))
    disk_loop = " ".join(shlex.quote(p) for p in _disk_paths(cluster, host))
    probes += [
        Probe("os-release", "cat /etc/os-release"),
        Probe("ip-addr", "ip addr"),
        Probe("ip-route", "ip route"),
        Probe("iptables-save", "iptables-save"),
        Probe("getenforce", "getenforce"),
        Probe("firewalld-state", "firewall-cmd --state"),
        Probe("firewalld-list", "firewall-cmd --list-all"),
        Probe("df", "df -P -h"),
        # One "k|i PATH <df -P line>" per existing path: space and inodes where the data lives.
        Probe(
            "disk",
            f'for p in {disk_loop}; do [ -e "$p" ] || continue;'
            ' printf "k %s " "$p"; df -P -k -- "$p" | tail -n 1;'
            ' printf "i %s " "$p"; df -P -i -- "$p" | tail -n 1; done',
        ),
        Probe("free", "free -m"),
    ]
    if host.is_etcd:
        url = f"http://{host.ip}:{s.etcd_client_port}"
        v2 = f"ETCDCTL_API=2 etcdctl --endpoints={url}"
        data_dir = shlex.quote(_data_dir(cluster, host))
        probes += [
            Probe("etcd-member-list-v2", f"{v2} member list"),
            Probe("etcd-cluster-health-v2", f"{v2} cluster-health"),
            Probe(
                "etcd-endpoint-status",
                f"ETCDCTL_API=3 etcdctl --endpoints={url} --dial-timeout=2s --command-timeout=4s"
                " endpoint status -w table",
            ),
            Probe("etcd-data-dir", f"ls -la -- {data_dir} {data_dir}/member {data_dir}/member/wal"),
            # Flannel network configs anywhere in etcd (not under the apiserver's /registry):
            # finds a key stored under another prefix than the inventory's.
            Probe(
                "flannel-config-search",
                f"{v2} ls --recursive / | grep '/config$' | grep -v '^/registry/' | head -n 50"
                f' | while read -r k; do printf "%s\\t" "$k"; {v2} get "$k" | tr -d "\\n"; echo;'
                " done",
            ),
        ]
    if host.is_master:
        # From 1.20 only the secure port: the cluster CA and the admin kubeconfig of the PKI.
        secure = s.kube_minor >= 20
        api = f"{'https' if secure else 'http'}://{cluster.master.ip}:{s.kube_api_port}"
        tls = " --cacert /etc/kubernetes/pki/ca.crt" if secure else ""
        credentials = " --kubeconfig /etc/kubernetes/pki/admin.kubeconfig" if secure else ""
        # kubectl get nodes and componentstatuses are verify's probes (JSON), not run twice.
        # Each kubectl costs a Go start-up: run them only when something answers on the port.
        kubectl = (
            f"curl -s -m 3{tls} -o /dev/null {api}/healthz"
            f" || {{ echo 'nothing answers on {api}: kubectl not run' >&2; exit 7; }};"
            f" kubectl -s {api}{credentials}"
        )
        probes += [
            Probe("kubectl-get-pods", f"{kubectl} get pods --all-namespaces -o wide"),
            Probe("kubectl-get-events", f"{kubectl} get events --all-namespaces"),
            Probe("kubectl-describe-nodes", f"{kubectl} describe nodes"),
        ]
    return probes


def probes_for(cluster: Cluster, host: Host, since: str) -> list[Probe]:
    """verify's probes (its checks are reused) and diagnose's, run by one batch script."""
    return [*verify.probes_for(cluster, host), *diagnose_probes(cluster, host, since)]


@dataclass(frozen=True)
class Collected:
    """What one host gave: every probe's output (in `facts`, which verify's checks read) or the
    reason it could not be collected (`facts.error`), and the host's clock."""

    host: str
    facts: HostFacts
    commands: Mapping[str, str] = field(default_factory=dict)  # probe name -> command line
    clock_offset: float | None = None  # host clock minus this machine's, in seconds
    clock_error: float = 0.0  # half the round trip of the `date` command
    host_time: float | None = None  # the host's clock when collection ended
    elapsed: float = 0.0

    @property
    def reachable(self) -> bool:
        return self.facts.error is None

    def output(self, probe: str) -> Output | None:
        return self.facts.outputs.get(probe)


Progress = Callable[[str, str, str], None]  # (host, stage, detail); stages: see `collect`


def _collect_host(
    cluster: Cluster, session: ssh.HostSession, since: str, progress: Progress | None
) -> Collected:
    host = session.host
    started = time.monotonic()
    if progress:
        progress(host.name, "collecting", f"{host.address}:{host.connection.port or 22}")
    probes = probes_for(cluster, host, since)
    commands = {p.name: p.command for p in probes}
    result = session.run(verify.batch_script(probes), timeout=SCRIPT_TIMEOUT)
    if result.error is not None:
        if progress:
            progress(host.name, "failed", result.error)
        return Collected(host.name, HostFacts(host.name, error=result.error), commands)
    outputs = verify.parse_batch(result.stdout)
    error = None
    if any(p.name not in outputs for p in probes):
        # The script itself failed (sudo refused, no /bin/sh, no mktemp or base64).
        why = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        error = (
            f"the collection script failed on {host.address} (exit {result.exit_code}): {why[0]}"
        )
    # The clock last, on the open session: the round trip is milliseconds, not a handshake.
    sent = time.time()
    clock = session.run("date +%s.%N", timeout=CLOCK_TIMEOUT)
    received = time.time()
    try:
        host_time: float | None = float(clock.stdout.strip())
    except ValueError:
        host_time = None
    elapsed = time.monotonic() - started
    if progress:
        progress(host.name, "failed" if error else "done", error or f"{elapsed:.1f} s")
    return Collected(
        host.name,
        HostFacts(host.name, outputs=outputs, error=error),
        commands,
        None if host_time is None else host_time - (sent + received) / 2,
        (received - sent) / 2,
        host_time,
        elapsed,
    )


def collect(
    cluster: Cluster,
    since: str = "-1h",
    *,
    progress: Progress | None = None,
    connect_timeout: float = ssh.CONNECT_TIMEOUT,
) -> dict[str, Collected]:
    """Collect every host in parallel; an unreachable host is a result, never an exception.
    `progress(host, stage, detail)` is called from worker threads with stages collecting,
    done and failed."""

    def work(session: ssh.HostSession) -> Collected:
        return _collect_host(cluster, session, since, progress)

    return ssh.on_hosts(list(cluster.hosts), work, timeout=connect_timeout)


# ---------------------------------------------------------------------------------------------
# Parsing what was collected


@dataclass(frozen=True)
class JournalLine:
    time: float | None
    ident: str  # syslog identifier with pid, e.g. etcd[393] or systemd[1]
    message: str
    text: str


_JOURNAL_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}) \S+ (?P<ident>[^:\s]+): ?(?P<msg>.*)$"
)
_SYSTEMD_STARTING = re.compile(r"^Starting ")
_SYSTEMD_STARTED = re.compile(r"^Started ")
# systemd's lines that end a run: a "Starting" before one of these belongs to an older run.
_SYSTEMD_ENDED = re.compile(
    r"(Main process exited|Deactivated successfully|Failed with result|Stopped |Scheduled restart)"
)


def parse_journal(text: str) -> list[JournalLine]:
    """`journalctl -o short-iso` lines; a line without a timestamp continues the one before."""
    lines: list[JournalLine] = []
    for raw in text.splitlines():
        match = _JOURNAL_LINE.match(raw)
        if match:
            stamp = datetime.strptime(match["ts"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
            lines.append(JournalLine(stamp, match["ident"], match["msg"], raw))
        elif raw.strip() and not raw.startswith("-- ") and lines:
            previous = lines[-1]
            lines.append(JournalLine(previous.time, previous.ident, raw.strip(), raw))
    return lines


def last_run(lines: Sequence[JournalLine]) -> list[JournalLine]:
    """The lines since systemd last started the unit (all lines when the start is older).
    A Type=notify daemon logs between systemd's "Starting" and "Started"; a Type=simple one
    after "Started", with no "Starting"."""
    start, ended = 0, True
    for i, line in enumerate(lines):
        if not line.ident.startswith("systemd["):
            continue
        if _SYSTEMD_STARTING.match(line.message) or (
            ended and _SYSTEMD_STARTED.match(line.message)
        ):
            start, ended = i, False
        elif _SYSTEMD_ENDED.search(line.message):
            ended = True
    return list(lines[start:])


_ERROR_WORDS = re.compile(
    r"(?i)(error|fatal|panic|fail|cannot|can't|couldn't|refused|denied|invalid|not found|"
    r"no such|unable|timeout|timed out)"
)


def last_error(lines: Sequence[JournalLine]) -> str:
    """The daemon's last line that says something went wrong (systemd's own lines only say
    that the process exited)."""
    own = [line for line in lines if not line.ident.startswith("systemd[")]
    for line in reversed(own):
        if _ERROR_WORDS.search(line.message):
            return line.message.strip()
    return own[-1].message.strip() if own else "no log lines in the collected window"


@dataclass(frozen=True)
class DiskUsage:
    kind: str  # "k" (1K blocks) or "i" (inodes)
    path: str
    total: int
    used: int
    free: int
    use_pct: int
    mount: str


_DISK_LINE = re.compile(
    r"^(?P<kind>[ki]) (?P<path>\S+) .+?\s+(?P<total>\d+)\s+(?P<used>\d+)\s+(?P<free>\d+)\s+"
    r"(?P<pct>\d+|-)%?\s+(?P<mount>/.*)$"
)


def parse_disk(text: str) -> list[DiskUsage]:
    usages = []
    for line in text.splitlines():
        match = _DISK_LINE.match(line.strip())
        if match and match["pct"] != "-":
            usages.append(
                DiskUsage(
                    match["kind"],
                    match["path"],
                    int(match["total"]),
                    int(match["used"]),
                    int(match["free"]),
                    int(match["pct"]),
                    match["mount"],
                )
            )
    return usages


# --- iptables: would a packet from another cluster host reach this port? ---------------------


@dataclass(frozen=True)
class Rule:
    chain: str
    line: str  # as iptables-save prints it, "-A CHAIN ..."
    proto: str | None = None
    sources: tuple[str, ...] = ()
    destinations: tuple[str, ...] = ()
    in_iface: str | None = None
    dports: tuple[tuple[int, int], ...] | None = None
    states: tuple[str, ...] | None = None
    certain: bool = True  # False: a match this reading does not model (then never "drops")
    target: str | None = None
    goto: bool = False


@dataclass(frozen=True)
class Packet:
    proto: str
    port: int
    source: str
    destination: str


_PROTOCOLS = {"6": "tcp", "17": "udp"}
_IGNORED_MATCH_OPTIONS = {"--comment"}


def _port_ranges(text: str) -> tuple[tuple[int, int], ...]:
    ranges = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        ranges.append((int(low or 0), int(high or low or 65535)))
    return tuple(ranges)


def parse_rule(line: str) -> Rule:
    words = shlex.split(line)
    chain = words[1]
    values: dict[str, Any] = {"certain": True}
    i = 2
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else ""
        if word in ("-j", "--jump", "-g", "--goto"):
            values["target"], values["goto"] = value, word in ("-g", "--goto")
            break  # what follows are the target's own options
        if word == "!":
            values["certain"] = False
            i += 1
            continue
        i += 2
        if word in ("-p", "--protocol"):
            values["proto"] = _PROTOCOLS.get(value, value.lower())
        elif word in ("-s", "--source"):
            values["sources"] = tuple(value.split(","))
        elif word in ("-d", "--destination"):
            values["destinations"] = tuple(value.split(","))
        elif word in ("-i", "--in-interface"):
            values["in_iface"] = value
        elif word == "-m":
            continue
        elif word in ("--dport", "--dports", "--destination-port", "--destination-ports"):
            try:
                values["dports"] = _port_ranges(value)
            except ValueError:
                values["certain"] = False
        elif word in ("--state", "--ctstate"):
            values["states"] = tuple(value.split(","))
        elif word in _IGNORED_MATCH_OPTIONS:
            continue
        else:
            values["certain"] = False
            if not value or value.startswith("-"):
                i -= 1  # an option without a value
    return Rule(chain=chain, line=line, **values)


def _in_networks(address: str, networks: Sequence[str]) -> bool:
    ip = ipaddress.ip_address(address)
    for net in networks:
        try:
            if ip in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False


def rule_matches(rule: Rule, packet: Packet) -> bool | None:
    """True or False when the rule surely does or does not match; None when unsure."""
    if rule.proto not in (None, "all", packet.proto):
        return False
    if rule.sources and not _in_networks(packet.source, rule.sources):
        return False
    if rule.destinations and not _in_networks(packet.destination, rule.destinations):
        return False
    if rule.in_iface == "lo":
        return False  # the packet comes from another host
    if rule.dports is not None and not any(lo <= packet.port <= hi for lo, hi in rule.dports):
        return False
    if rule.states is not None and "NEW" not in rule.states:
        return False
    return True if rule.certain else None


@dataclass(frozen=True)
class Firewall:
    policies: Mapping[str, str]
    chains: Mapping[str, tuple[Rule, ...]]


def parse_iptables(text: str) -> Firewall:
    """The filter table of `iptables-save` output."""
    policies: dict[str, str] = {}
    chains: dict[str, list[Rule]] = {}
    table = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:]
        elif table != "filter":
            continue
        elif line.startswith(":"):
            name, policy = [*line[1:].split(), "-"][:2]
            policies[name] = policy
            chains.setdefault(name, [])
        elif line.startswith("-A "):
            try:
                rule = parse_rule(line)
            except (ValueError, IndexError):
                continue
            chains.setdefault(rule.chain, []).append(rule)
    return Firewall(policies, {name: tuple(rules) for name, rules in chains.items()})


def _walk(
    firewall: Firewall, chain: str, packet: Packet, depth: int = 0
) -> tuple[str, Rule | None]:
    """('accept'|'drop'|'return'|'unknown', the rule that decided)."""
    if depth > 20:
        return "unknown", None
    for rule in firewall.chains.get(chain, ()):
        matched = rule_matches(rule, packet)
        if matched is False:
            continue
        target = rule.target or ""
        if target == "ACCEPT":
            return "accept", rule  # an uncertain ACCEPT may let it in: never claim a drop
        if target in ("DROP", "REJECT"):
            if matched:
                return "drop", rule
            continue
        if target == "RETURN":
            return ("return", rule) if matched else ("unknown", rule)
        if target in firewall.chains:
            verdict, decider = _walk(firewall, target, packet, depth + 1)
            if verdict == "return" and rule.goto and matched:
                return "return", decider
            if verdict == "accept" or (matched and verdict in ("drop", "unknown")):
                return verdict, decider
    return "return", None


def blocked_ports(
    firewall: Firewall, ports: Sequence[str], destination: str, sources: Sequence[str]
) -> dict[str, Rule | None]:
    """{port: the rule that drops it (None: the INPUT policy)} for packets from `sources`."""
    blocked: dict[str, Rule | None] = {}
    for spec in ports:
        port, _, proto = spec.partition("/")
        for source in sources:
            verdict, rule = _walk(firewall, "INPUT", Packet(proto, int(port), source, destination))
            if verdict == "return" and firewall.policies.get("INPUT") == "DROP":
                verdict, rule = "drop", None
            if verdict == "drop":
                blocked[spec] = rule
                break
    return blocked


def firewalld_open(list_all: str) -> tuple[bool, set[str]]:
    """(zone target is ACCEPT, the port/proto specs open) from `firewall-cmd --list-all`."""
    fields: dict[str, str] = {}
    for line in list_all.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    opened: set[str] = set()
    for spec in fields.get("ports", "").split():
        number, _, proto = spec.partition("/")
        low, _, high = number.partition("-")
        if low.isdigit():
            opened |= {f"{p}/{proto}" for p in range(int(low), int(high or low) + 1)}
    for service in fields.get("services", "").split():
        opened |= set(_FIREWALLD_SERVICES.get(service, ()))
    return fields.get("target", "").upper() == "ACCEPT", opened


# ---------------------------------------------------------------------------------------------
# Evaluate (pure): events, then findings


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


@dataclass(frozen=True)
class Drift:
    host: str
    path: str
    component: str
    state: str  # "missing" or "differs"
    diff: str  # unified diff, rendered (expected) -> on the host


def drift(cluster: Cluster, collected: Mapping[str, Collected]) -> list[Drift]:
    """Every rendered file that is missing on its host or differs from `render`'s bytes."""
    env = render.template_environment()
    drifts: list[Drift] = []
    for host in cluster.hosts:
        got = collected.get(host.name)
        if got is None or not got.reachable:
            continue
        expected = render.render_host(cluster, host.name, env)
        for planned in render.planned_files(cluster, host):
            output = got.output(f"file:{planned.dest}")
            if output is None:
                continue
            if output.exit_code != 0:
                if "No such file" in output.stderr:
                    drifts.append(Drift(host.name, planned.dest, planned.component, "missing", ""))
                continue  # unreadable: recorded as a collection error, not judged
            want = expected[planned.dest]
            if output.stdout == want:
                continue
            diff = "".join(
                difflib.unified_diff(
                    want.splitlines(keepends=True),
                    output.stdout.splitlines(keepends=True),
                    fromfile=f"rendered/{host.name}{planned.dest}",
                    tofile=f"{host.name}:{planned.dest}",
                )
            )
            drifts.append(Drift(host.name, planned.dest, planned.component, "differs", diff))
    return drifts


def _diff_stat(diff: str) -> str:
    lines = diff.splitlines()
    added = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
    removed = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
    return f"{added} line{'s' if added != 1 else ''} added, {removed} removed"


def _truncate(text: str, lines: int = EVIDENCE_LINES) -> str:
    kept = text.rstrip("\n").splitlines()
    if len(kept) <= lines:
        return "\n".join(kept)
    return "\n".join([*kept[:lines], f"... ({len(kept) - lines} more lines in the bundle)"])


def _unit_states(cluster: Cluster, got: Collected) -> dict[str, verify.UnitState]:
    output = got.output("units")
    if output is None or output.exit_code != 0:
        return {}
    return verify.parse_units(output.stdout, verify.host_units(cluster.host(got.host)))


def _host_events(cluster: Cluster, got: Collected) -> Iterator[Event]:
    """Unit states and journal lines of one reachable host."""
    states = _unit_states(cluster, got)
    for unit in verify.host_units(cluster.host(got.host)):
        state = states.get(unit)
        output = got.output(f"journal:{unit}")
        lines = parse_journal(output.stdout) if output is not None else []
        running = state is None or not state.installed or state.active == "active"
        run = last_run(lines) if not running else lines[-5:]
        first_of_run = len(lines) - len(run)
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
            {"unit": unit, "state": status, "load": state.load, "last_error": last_error(run)},
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


def _disk_events(got: Collected) -> Iterator[Event]:
    output = got.output("disk")
    if output is None:
        return
    seen: set[tuple[str, str]] = set()
    for usage in parse_disk(output.stdout):
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
    ports = needed_ports(cluster, host)
    state = got.output("firewalld-state")
    if state is not None and state.exit_code == 0 and state.stdout.strip() == "running":
        listing = got.output("firewalld-list")
        listed = listing.stdout if listing else ""
        accept_all, opened = firewalld_open(listed)
        closed = [p for p in ports if p not in opened]
        if accept_all or not closed:
            return
        yield Event(
            host.name,
            "condition",
            "firewalld_blocks",
            " ".join(closed),
            {"ports": ", ".join(closed), "add_ports": " ".join(f"--add-port={p}" for p in closed)},
            f"firewall-cmd --list-all on {host.name}:\n{_truncate(listed)}",
        )
        return
    saved = got.output("iptables-save")
    if saved is None or saved.exit_code != 0:
        return
    sources = [h.ip for h in cluster.hosts if h.name != host.name] or [host.ip]
    blocked = blocked_ports(parse_iptables(saved.stdout), ports, host.ip, sources)
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
    mode = got.output("getenforce")
    if mode is None or mode.exit_code != 0 or mode.stdout.strip() != "Enforcing":
        return
    release = got.output("os-release")
    facts = preflight.parse_probe(release.stdout if release else "")
    ids = {facts.get("ID", "").strip("\"'")} | set(facts.get("ID_LIKE", "").strip("\"'").split())
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
        search = got.output("flannel-config-search") if got else None
        if search is None or search.exit_code != 0:
            continue
        for line in search.stdout.splitlines():
            key, _, value = line.partition("\t")
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
        output = got.output("etcd-members") if got else None
        if output is None or output.exit_code != 0:
            continue
        try:
            members = json.loads(output.stdout).get("members", [])
        except (ValueError, AttributeError):
            continue
        seen_from.append(member)
        for item in members:
            listed.add(str(item.get("name", "")))
            listed.update(str(url) for url in item.get("peerURLs") or [])
    if not seen_from:
        return
    port = cluster.settings.etcd_peer_port
    for name in cluster.etcd:
        host = cluster.host(name)
        if name in listed or f"http://{host.ip}:{port}" in listed:
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
) -> list[Event]:
    found: list[Event] = []
    for host in cluster.hosts:
        got = collected.get(host.name)
        if got is None:
            continue
        if not got.reachable:
            error = got.facts.error or "not collected"
            found.append(Event(host.name, "ssh", "ssh", error, {"error": error}, error))
            continue
        found += _host_events(cluster, got)
        found += _disk_events(got)
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
        evidence = _truncate(d.diff) if d.diff else f"{d.path}: No such file or directory"
        found.append(
            Event(
                d.host,
                "condition",
                "drift",
                f"{d.state} {d.path}",
                {
                    "path": d.path,
                    "state": d.state,
                    "diff_stat": _diff_stat(d.diff) if d.diff else "missing",
                    "file_component": d.component,
                },
                evidence,
            )
        )
    return found


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
    api_url = str(ctx["kube_master_url"])
    if s.kube_minor >= 20:
        api_url = f"https://{cluster.master.ip}:{s.kube_api_port}"
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
        "member_url": f"http://{host.ip}:{s.etcd_client_port}",
        "peer_url": f"http://{host.ip}:{s.etcd_peer_port}",
        "first_etcd": cluster.etcd[0],
        "healthy_member": healthy_member,
        "healthy_member_url": f"http://{cluster.host(healthy_member).ip}:{s.etcd_client_port}",
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


def _resolve_host(cluster: Cluster, name: str) -> str | None:
    for host in cluster.hosts:
        if name in (host.name, host.address, host.ip, host.kube_node_name):
            return host.name
    return None


def _accepts(match: Match, event: Event, now: float | None) -> bool:
    if match.source != event.source or not fnmatch.fnmatchcase(event.name, match.name):
        return False
    if event.source != "journal":
        return True
    if match.window is None:
        return event.last_run
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
    secrets: Sequence[str] = (),
) -> list[Finding]:
    """Findings, deduplicated (one per signature, host, component and diagnosis; the latest
    evidence wins), without those suppressed, most severe and most fundamental first."""
    host_times = host_times or {}
    common = {
        h.name: host_vars(cluster, h, inventory=inventory, since=since, healthy=healthy)
        for h in cluster.hosts
    }
    findings: dict[tuple[str, str, str, str], Finding] = {}
    for sig in signatures:
        for event in found:
            now = host_times.get(event.host)
            match, groups = next(
                (
                    (m, g)
                    for m in sig.matches
                    if _accepts(m, event, now) and (g := _groups(m, event))
                ),
                (None, []),
            )
            if match is None:
                continue
            for group in groups:
                values = {**common[event.host], **event.vars, **group}
                host = event.host
                evidence = event.evidence or _truncate(event.text)
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
                    diagnosis=redact(sig.diagnosis.format_map(values), secrets),
                    fix=tuple(redact(f.format_map(values), secrets) for f in sig.fix),
                    evidence=redact(evidence, secrets),
                )
                findings[(sig.id, host, finding.component, finding.diagnosis)] = finding
    by_id = {s.id: s for s in signatures}
    present = {(f.host, f.component, f.id) for f in findings.values()}
    kept = [
        f
        for f in findings.values()
        if not any((f.host, f.component, s) in present for s in by_id[f.id].suppressed_by)
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


@dataclass(frozen=True)
class Evaluation:
    report: Report
    drifts: tuple[Drift, ...]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


def evaluate(
    cluster: Cluster,
    collected: Mapping[str, Collected],
    *,
    inventory: str,
    since: str = "-1h",
    signatures: Sequence[Signature] | None = None,
) -> Evaluation:
    report = verify.evaluate(cluster, {name: got.facts for name, got in collected.items()})
    drifts = drift(cluster, collected)
    # Members to run fixes on: healthy ones first, then those whose etcd at least runs.
    healthy = [c.host for c in report.checks if c.check == "etcd:health" and c.status == "pass"]
    healthy += [
        c.host
        for c in report.checks
        if c.check == "unit:etcd" and c.status == "pass" and c.host not in healthy
    ]
    findings = match_signatures(
        cluster,
        signatures if signatures is not None else load_signatures(),
        events(cluster, collected, report, drifts),
        inventory=inventory,
        since=since,
        host_times={name: got.host_time for name, got in collected.items()},
        healthy=healthy,
        secrets=cluster_secrets(cluster),
    )
    return Evaluation(report, tuple(drifts), tuple(findings))


# ---------------------------------------------------------------------------------------------
# The bundle


def default_bundle_path(now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path(f"k8s-provision-diagnose-{stamp}.tar.gz")


def _command_file(command: str, output: Output) -> str:
    parts = [f"$ {command}", f"# exit {output.exit_code}", output.stdout.rstrip("\n")]
    if output.stderr.strip():
        parts += ["--- stderr ---", output.stderr.rstrip("\n")]
    return "\n".join(parts) + "\n"


def _collection_error(probe: str, output: Output) -> str | None:
    """Why a command gave nothing useful; None when its exit code is itself the answer
    (systemctl status of a stopped unit exits 3, getenforce without SELinux 127 ...)."""
    if output.exit_code == 124:
        return f"{probe}: timed out after {verify.PROBE_TIMEOUT} s"
    if output.exit_code in (126, 127) and probe not in (
        "getenforce",
        "firewalld-state",
        "firewalld-list",
    ):
        last = (output.stderr.strip().splitlines() or ["command not found"])[-1]
        return f"{probe}: not available on this host ({last})"
    if probe.startswith("file:") and output.exit_code != 0 and "No such file" not in output.stderr:
        return f"{probe}: {output.stderr.strip() or f'exit {output.exit_code}'}"
    return None


def _host_members(
    got: Collected, drifts: Sequence[Drift], secrets: Sequence[str]
) -> tuple[dict[str, str], list[str]]:
    """{path in the host's directory: content} and the collection errors of one host."""
    files: dict[str, str] = {}
    errors: list[str] = []
    if not got.reachable:
        files["error.txt"] = (got.facts.error or "not collected") + "\n"
        errors.append(got.facts.error or "not collected")
    for name, output in sorted(got.facts.outputs.items()):
        kind, _, subject = name.partition(":")
        if kind == "file":
            if output.exit_code == 0:
                files["files" + subject] = output.stdout
        elif kind == "journal":
            files[f"journal/{subject}.log"] = output.stdout
        elif kind == "status":
            files[f"systemctl-status/{subject}.txt"] = _command_file(got.commands[name], output)
        else:
            command = got.commands.get(name, name)
            files[f"commands/{name}.txt"] = _command_file(command, output)
        problem = _collection_error(name, output)
        if problem:
            errors.append(problem)
    for d in drifts:
        if d.host == got.host and d.diff:
            files[f"drift{d.path}.diff"] = d.diff
    return {path: redact(text, secrets) for path, text in files.items()}, errors


def manifest(
    cluster: Cluster,
    collected: Mapping[str, Collected],
    evaluation: Evaluation,
    members: Mapping[str, Sequence[str]],
    errors: Mapping[str, Sequence[str]],
    *,
    inventory: str,
    since: str,
    created: datetime,
) -> dict[str, Any]:
    hosts: dict[str, Any] = {}
    for host in cluster.hosts:
        got = collected.get(host.name)
        hosts[host.name] = {
            "address": host.address,
            "ip": host.ip,
            "roles": sorted(host.roles),
            "reachable": bool(got and got.reachable),
            "error": got.facts.error if got else "not collected",
            "clock_offset_seconds": round(got.clock_offset, 3)
            if got and got.clock_offset is not None
            else None,
            "collection_seconds": round(got.elapsed, 2) if got else None,
            "collected": list(members.get(host.name, ())),
            "errors": list(errors.get(host.name, ())),
        }
    return {
        "tool": "k8s-provision",
        "version": __version__,
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inventory": inventory,
        "since": since,
        "journal_lines_per_unit": JOURNAL_LINES,
        "ok": evaluation.ok,
        "hosts": hosts,
        "errors": [f"{host}: {e}" for host, errs in errors.items() for e in errs],
        "findings": [f.as_dict() for f in evaluation.findings],
    }


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float, *, directory: bool) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = int(mtime)
    info.uid = info.gid = 0
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o700
        tar.addfile(info)
        return
    info.size, info.mode = len(data), 0o600
    tar.addfile(info, io.BytesIO(data))


def write_bundle(path: Path, root: str, files: Mapping[str, str], *, mtime: float) -> None:
    """Write `files` ({relative path: text}) under `root/` into the tar.gz at `path`,
    atomically (a temporary file beside it, renamed when complete) and readable by its owner
    only: it may hold sensitive data."""
    path = path.resolve()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise UsageError(f"{path}: cannot write the bundle there: {err.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            with tarfile.open(fileobj=handle, mode="w:gz") as tar:
                for directory in _directories(root, files):
                    _add(tar, directory, b"", mtime, directory=True)
                for rel in sorted(files):
                    _add(tar, f"{root}/{rel}", files[rel].encode(), mtime, directory=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise UsageError(f"{path}: cannot write the bundle: {err.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _directories(root: str, files: Iterable[str]) -> list[str]:
    """Every directory the files sit in, parents first."""
    found = {root}
    for rel in files:
        parts = rel.split("/")[:-1]
        found |= {"/".join([root, *parts[:i]]) for i in range(1, len(parts) + 1)}
    return sorted(found)


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


# ---------------------------------------------------------------------------------------------
# The whole run


@dataclass(frozen=True)
class Diagnosis:
    evaluation: Evaluation
    bundle: Path
    collected: Mapping[str, Collected]

    @property
    def ok(self) -> bool:
        return self.evaluation.ok

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.evaluation.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "findings": [f.as_dict() for f in self.findings],
            "bundle": str(self.bundle),
        }


def check_output_path(path: Path) -> None:
    """Refuse early (before any SSH) a bundle path that cannot be written."""
    parent = path.resolve().parent
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give a file name for the bundle")
    if not parent.is_dir():
        raise UsageError(f"{parent}: no such directory for the bundle")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{parent}: not writable for the bundle")


def bundle_files(
    cluster: Cluster,
    collected: Mapping[str, Collected],
    evaluation: Evaluation,
    *,
    root: str,
    inventory: str,
    since: str,
    created: datetime,
) -> dict[str, str]:
    """{path under root: content}: a directory per host, manifest.json and findings.txt."""
    secrets = cluster_secrets(cluster)
    files: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    errors: dict[str, list[str]] = {}
    for host in cluster.hosts:
        host_files, host_errors = _host_members(collected[host.name], evaluation.drifts, secrets)
        for rel, text in host_files.items():
            files[f"{host.name}/{rel}"] = text
        members[host.name] = sorted(f"{root}/{host.name}/{rel}" for rel in host_files)
        if host_errors:
            errors[host.name] = host_errors
    document = manifest(
        cluster,
        collected,
        evaluation,
        members,
        errors,
        inventory=inventory,
        since=since,
        created=created,
    )
    files["manifest.json"] = json.dumps(document, indent=2) + "\n"
    files["findings.txt"] = findings_text(evaluation.findings)
    return files


def diagnose(
    cluster: Cluster,
    *,
    inventory: str,
    output: Path | None = None,
    since: str = "1h",
    progress: Progress | None = None,
) -> Diagnosis:
    """Collect every host, find the faults and write the bundle."""
    since_arg = journal_since(since)
    created = datetime.now(UTC)
    bundle = output or default_bundle_path(created)
    check_output_path(bundle)
    collected = collect(cluster, since_arg, progress=progress)
    evaluation = evaluate(cluster, collected, inventory=inventory, since=since_arg)
    root = bundle.name.removesuffix(".tar.gz").removesuffix(".tgz") or "k8s-provision-diagnose"
    files = bundle_files(
        cluster,
        collected,
        evaluation,
        root=root,
        inventory=inventory,
        since=since,
        created=created,
    )
    write_bundle(bundle, root, files, mtime=created.timestamp())
    return Diagnosis(evaluation, bundle, collected)


def failure_summary(findings: Sequence[Finding]) -> str:
    errors = [f for f in findings if f.severity == "error"]
    first = errors[0]
    noun = "error" if len(errors) == 1 else "errors"
    return f"diagnose: {len(errors)} {noun}; first: {first.host} {first.component} [{first.id}]"
