"""The host itself: OS release, SELinux mode, disk space and inodes where the cluster keeps its
data, memory."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from k8s_provision.probes.base import Output, Probe, raw


def parse_os_release(text: str) -> set[str]:
    """The distribution's ID and ID_LIKE words from /etc/os-release."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("\"'")
    return {values.get("ID", "")} | set(values.get("ID_LIKE", "").split())


def os_release() -> Probe[set[str]]:
    return Probe("os-release", "cat /etc/os-release", lambda out: parse_os_release(out.stdout))


def selinux() -> Probe[str | None]:
    """getenforce's mode (Enforcing, Permissive, Disabled); None without SELinux tools."""
    return Probe(
        "getenforce", "getenforce", lambda out: out.stdout.strip() if out.exit_code == 0 else None
    )


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


def disk(paths: Sequence[str]) -> Probe[list[DiskUsage]]:
    """Space and inodes of each existing path: one "k|i PATH <df -P line>" line each."""
    loop = " ".join(shlex.quote(p) for p in paths)
    # One df per kind for all paths (it prints a line per path, in order, after a header).
    per_kind = (
        'df -P -{flag} -- "$@" | tail -n +2 |'
        ' while read -r line; do printf "{kind} %s %s\\n" "$1" "$line"; shift; done'
    )
    return Probe(
        "disk",
        f'set --; for p in {loop}; do if [ -e "$p" ]; then set -- "$@" "$p"; fi; done;'
        f" [ $# -gt 0 ] || exit 0; {per_kind.format(flag='k', kind='k')};"
        f" {per_kind.format(flag='i', kind='i')}",
        lambda out: parse_disk(out.stdout),
    )


def df() -> Probe[Output]:
    return Probe("df", "df -P -h", raw)


def free() -> Probe[Output]:
    return Probe("free", "free -m", raw)


def file(path: str) -> Probe[Output]:
    """A file's bytes; the exit code and stderr say whether it is missing or unreadable."""
    return Probe(f"file:{path}", f"cat -- {shlex.quote(path)}", raw)
