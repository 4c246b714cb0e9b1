"""Many probes in one POSIX sh script, run in parallel on the host, and the framing that
carries each probe's exit code, stdout and stderr back through one SSH command.

The script costs a fixed handful of processes per host plus two forks of `sh` per probe:
every probe runs in a subshell of one `sh`, which one `timeout` bounds for all of them (they
start together, so one deadline is the same bound as one per probe, without a `timeout` and
often a `sh -c` per probe); each writes its exit code, stdout and stderr to files of a private
directory; at the end one `stat` lists their sizes, one `cat` concatenates them in the same
order, and one `base64` makes the whole stream safe to carry as text. fork/exec is most of what
verify and diagnose spend of a host's CPU, and in the lab twelve hosts share two cores."""

from __future__ import annotations

import base64
import binascii
import shlex
from collections.abc import Iterable
from typing import Any

from k8s_provision.probes.base import PROBE_TIMEOUT, TIMED_OUT, Output, Probe

MARK = "@@k8s-provision-verify@@"
_SUFFIXES = ("rc", "out", "err")


def _job(index: int, command: str) -> str:
    # `eval` in a subshell: each probe is parsed on its own (a probe that does not parse fails
    # alone), and its `exit` or `cd` ends only that subshell. The subshell that runs it writes
    # the exit code last, so a probe killed at the deadline leaves no code.
    return (
        f"{{ (eval {shlex.quote(command)})"
        f' >"$0/{index}.out" 2>"$0/{index}.err" </dev/null; echo $? >"$0/{index}.rc"; }} &'
    )


def batch_script(probes: Iterable[Probe[Any]], timeout: int = PROBE_TIMEOUT) -> str:
    """One POSIX sh script running every probe in parallel for at most `timeout` seconds (then
    TERM to all of them, KILL 2 s later). It prints one line: MARK, then the base64 of
    `<file> <size>` lines, an empty line, and the files' bytes back to back."""
    jobs = "\n".join([*(_job(i, p.command) for i, p in enumerate(probes)), "wait"])
    lines = [
        "d=$(mktemp -d) || exit 125",
        "trap 'rm -rf \"$d\"' EXIT",
        f'timeout -k 2 {timeout} sh -c {shlex.quote(jobs)} "$d"',
        'cd "$d" || exit 125',
        # One expansion for both commands, so sizes and bytes come in the same order.
        "set -- *",
        f"printf '%s ' {MARK}",
        '{ stat -c "%n %s" -- "$@" && echo && cat -- "$@"; } | base64 -w0',
        "echo",
    ]
    return "\n".join(lines) + "\n"


def parse_batch(text: str, probes: Iterable[Probe[Any]]) -> dict[str, Output]:
    """Undo `batch_script`'s framing: {probe name: Output}. `probes` are the probes the script
    was made of, in the same order (the host sees only their indices). A probe without an exit
    code was killed at the deadline: it reads as `timeout`'s 124, with what it printed."""
    names = [p.name for p in probes]
    for line in text.splitlines():
        head, _, payload = line.partition(" ")
        if head != MARK:
            continue
        try:
            stream = base64.b64decode(payload.strip(), validate=True)
        except (ValueError, binascii.Error):
            return {}
        return _split(stream, names)
    return {}


def _split(stream: bytes, names: list[str]) -> dict[str, Output]:
    listing, sep, body = stream.partition(b"\n\n")
    if not sep:
        return {}
    files: dict[tuple[str, str], bytes] = {}
    offset = 0
    for entry in listing.decode("utf-8", "replace").splitlines():
        name, _, size_text = entry.rpartition(" ")
        index, _, suffix = name.partition(".")
        if not size_text.isdigit() or suffix not in _SUFFIXES:
            return {}
        size = int(size_text)
        files[(index, suffix)] = body[offset : offset + size]
        offset += size
    outputs: dict[str, Output] = {}
    for number, name in enumerate(names):
        index = str(number)
        try:
            code = int(files.get((index, "rc"), b"").decode().strip())
        except ValueError:
            code = TIMED_OUT
        outputs[name] = Output(
            code,
            files.get((index, "out"), b"").decode("utf-8", "replace"),
            files.get((index, "err"), b"").decode("utf-8", "replace"),
        )
    return outputs
