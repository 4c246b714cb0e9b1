"""systemd probes and parsers: unit states (`systemctl show`), `systemctl status`, and the
journal of a unit (`journalctl`) read into lines, the unit's last run and its last error."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from k8s_provision.probes.base import Output, Probe

# When the main process was executed (CLOCK_MONOTONIC microseconds): what a service's config
# files are compared with (service_state).
START_PROPERTY = "ExecMainStartTimestampMonotonic"
JOURNAL_LINES = 5000  # per unit: enough for an hour of a failing daemon, bounded for big clusters


@dataclass(frozen=True)
class UnitState:
    load: str
    active: str
    sub: str
    file_state: str = ""
    started: int = 0  # when the main process was executed: CLOCK_MONOTONIC microseconds

    @property
    def installed(self) -> bool:
        return self.load != "not-found"


def parse_units(text: str, units: Iterable[str]) -> dict[str, UnitState]:
    """`systemctl show -p ... a b c` prints one blank-line separated block per unit, in the
    order asked. Matched by position: an alias reports its target's Id."""
    blocks = [block for block in text.strip().split("\n\n") if block.strip()]
    states: dict[str, UnitState] = {}
    for unit, block in zip(units, blocks, strict=False):
        props = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        states[unit] = UnitState(
            load=props.get("LoadState", ""),
            active=props.get("ActiveState", ""),
            sub=props.get("SubState", ""),
            file_state=props.get("UnitFileState", ""),
            started=started(props),
        )
    return states


def started(props: Mapping[str, str]) -> int:
    """START_PROPERTY of `systemctl show`'s properties (0: never ran, or not shown)."""
    value = props.get(START_PROPERTY, "")
    return int(value) if value.isdigit() else 0


def units(names: Sequence[str], probe: str = "units") -> Probe[dict[str, UnitState]]:
    """The state of each unit in `names`, with one systemctl for all of them; {} when
    systemctl failed (see the raw output). `probe` names the probe in a batch."""
    listed = " ".join(f"{u}.service" for u in names)

    def parse(output: Output) -> dict[str, UnitState]:
        return parse_units(output.stdout, names) if output.exit_code == 0 else {}

    return Probe(
        probe,
        f"systemctl show -p Id,LoadState,ActiveState,SubState,UnitFileState,{START_PROPERTY}"
        f" -- {listed}",
        parse,
    )


# The first line of a unit's block in `systemctl status`: its state glyph (an asterisk outside
# UTF-8 locales), then the unit's name.
_STATUS_HEADER = re.compile(r"^\S (?P<unit>\S+)\.service(?: - .*)?$", re.MULTILINE)
_SERVICE = re.compile(r"(?P<unit>[\w@:.-]+)\.service\b")


def status(units: Sequence[str]) -> Probe[dict[str, Output]]:
    """`systemctl status` of every unit in `units`, one systemctl for all of them, read into
    each unit's share (see `split_status`). -n 0: the log lines are the journal probe's, and
    reading the journal twice was most of the command's cost."""
    listed = " ".join(f"{u}.service" for u in units)
    return Probe("status", f"systemctl status --no-pager -l -n 0 -- {listed}", split_status)


def split_status(output: Output) -> dict[str, Output]:
    """{unit: its share of `systemctl status`}: its block of stdout (header line to the next
    header) and the stderr lines that name it ("Unit x.service could not be found."), with
    the command's exit code."""
    text = output.stdout
    headers = list(_STATUS_HEADER.finditer(text))
    ends = [h.start() for h in headers[1:]] + [len(text)]
    shares = {
        header["unit"]: [text[header.start() : end].strip("\n") + "\n", ""]
        for header, end in zip(headers, ends, strict=True)
    }
    for line in output.stderr.splitlines(keepends=True):
        named = _SERVICE.search(line)
        if named:
            shares.setdefault(named["unit"], ["", ""])[1] += line
    return {unit: Output(output.exit_code, out, err) for unit, (out, err) in shares.items()}


# ---------------------------------------------------------------------------------------------
# The journal


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
_ERROR_WORDS = re.compile(
    r"(?i)(error|fatal|panic|fail|cannot|can't|couldn't|refused|denied|invalid|not found|"
    r"no such|unable|timeout|timed out)"
)

# The daemon's syslog identifier(s) when it is not the unit's name (CentOS 7's docker runs
# dockerd-current; flanneld starts through the flanneld-start wrapper).
_IDENTIFIERS = {
    "docker": ("dockerd", "dockerd-current", "docker"),
    "flanneld": ("flanneld", "flanneld-start"),
}


def journal_matches(unit: str) -> str:
    """journalctl's matches for a unit: what `-u` selects plus the daemon's own identifier.
    A daemon that exits at once is often logged without its unit (journald reads the unit
    from the process's cgroup, gone by then): `-u` alone misses exactly the line that says
    why it failed."""
    identifiers = " ".join(f"SYSLOG_IDENTIFIER={i}" for i in _IDENTIFIERS.get(unit, (unit,)))
    return f"_SYSTEMD_UNIT={unit}.service + UNIT={unit}.service + {identifiers}"


def parse_journal(text: str) -> list[JournalLine]:
    """`journalctl -o short-iso` lines; a line without a timestamp continues the one before."""
    lines: list[JournalLine] = []
    for raw_line in text.splitlines():
        match = _JOURNAL_LINE.match(raw_line)
        if match:
            stamp = datetime.strptime(match["ts"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
            lines.append(JournalLine(stamp, match["ident"], match["msg"], raw_line))
        elif raw_line.strip() and not raw_line.startswith("-- ") and lines:
            previous = lines[-1]
            lines.append(JournalLine(previous.time, previous.ident, raw_line.strip(), raw_line))
    return lines


def journal(unit: str, since: str) -> Probe[list[JournalLine]]:
    """The unit's journal since `since` (journalctl's own syntax), as lines."""
    return Probe(
        f"journal:{unit}",
        f"journalctl {journal_matches(unit)} --since={shlex.quote(since)} --no-pager"
        f" -o short-iso -n {JOURNAL_LINES}",
        lambda output: parse_journal(output.stdout),
    )


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


def last_error(lines: Sequence[JournalLine]) -> str:
    """The daemon's last line that says something went wrong (systemd's own lines only say
    that the process exited)."""
    own = [line for line in lines if not line.ident.startswith("systemd[")]
    for line in reversed(own):
        if _ERROR_WORDS.search(line.message):
            return line.message.strip()
    return own[-1].message.strip() if own else "no log lines in the collected window"
