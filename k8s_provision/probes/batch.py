"""Many probes in one POSIX sh script, run in parallel on the host, and the framing that
carries each probe's exit code, stdout and stderr back through one SSH command.

The framing costs a fixed three processes per host, not a few per probe: every probe writes
its exit code, stdout and stderr to files of a private directory; at the end one `stat` lists
their sizes, one `cat` concatenates them in the same order, and one `base64` makes the whole
stream safe to carry as text. On a host of 40 probes that is the difference between 3 and 160
fork/execs, which is what verify and diagnose spend most of a host's CPU on. For the same
reason a probe that is only words (most are: `systemctl status -- x.service`) is run by
`timeout` itself, not through a `sh -c` of its own."""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from collections.abc import Iterable
from typing import Any

from k8s_provision.probes.base import PROBE_TIMEOUT, Output, Probe

MARK = "@@k8s-provision-verify@@"
_SUFFIXES = ("rc", "out", "err")
# Words sh runs itself, with no program of the name for `timeout` to run.
_SHELL_ONLY = frozenset(
    {
        ".", ":", "alias", "bg", "break", "case", "cd", "command", "continue", "do", "done",
        "elif", "else", "esac", "eval", "exec", "exit", "export", "fc", "fg", "fi", "for",
        "getopts", "hash", "if", "in", "jobs", "read", "readonly", "return", "set", "shift",
        "then", "time", "times", "trap", "type", "ulimit", "umask", "unalias", "unset", "until",
        "wait", "while",
    }
)  # fmt: skip


# A word as shlex.quote writes it: bare when every character is safe, else in single quotes
# (a quote inside written as '"'"'). Matching the words in one scan costs microseconds;
# shlex.split, which this replaces, cost a few milliseconds of the controller's (GIL-bound)
# CPU per probe, on every host of every verify.
_WORD = re.compile(r"""[\w@%+=:,./-]+|'[^']*(?:'"'"'[^']*)*'""", re.ASCII)


def _plain_words(command: str) -> list[str] | None:
    """The words of `command` when it is nothing but words as shlex.join writes them, one
    space apart (so sh would only split it into words), else None."""
    if not command:
        return []
    words: list[str] = []
    position = 0
    while True:
        match = _WORD.match(command, position)
        if match is None:
            return None
        word = match.group()
        if word.startswith("'"):
            word = word[1:-1].replace("'\"'\"'", "'")
            if shlex.quote(word) != match.group():
                return None  # quoted although it need not be: not how shlex.join writes it
        words.append(word)
        position = match.end()
        if position == len(command):
            return words
        if command[position] != " ":
            return None
        position += 1


def _runner(command: str) -> str:
    """What `timeout` runs for `command`: its words as they are when sh would only split it
    into words (no operator, expansion, glob, assignment or built-in), else `sh -c command`."""
    words = _plain_words(command)
    if words and "=" not in words[0] and words[0] not in _SHELL_ONLY:
        return command
    return f"sh -c {shlex.quote(command)}"


def batch_script(probes: Iterable[Probe[Any]], timeout: int = PROBE_TIMEOUT) -> str:
    """One POSIX sh script running every probe in parallel. It prints one line: MARK, then the
    base64 of `<file> <size>` lines, an empty line, and the files' bytes back to back."""
    probes = list(probes)
    lines = [
        "d=$(mktemp -d) || exit 125",
        "trap 'rm -rf \"$d\"' EXIT",
    ]
    for i, probe in enumerate(probes):
        lines.append(
            f"{{ timeout -k 2 {timeout} {_runner(probe.command)}"
            f' >"$d/{i}.out" 2>"$d/{i}.err" </dev/null; echo $? >"$d/{i}.rc"; }} &'
        )
    lines += [
        "wait",
        'cd "$d" || exit 125',
        # One expansion for both commands, so sizes and bytes come in the same order.
        "set -- *.rc *.out *.err",
        f"printf '%s ' {MARK}",
        '{ stat -c "%n %s" -- "$@" && echo && cat -- "$@"; } | base64 -w0',
        "echo",
    ]
    return "\n".join(lines) + "\n"


def parse_batch(text: str, probes: Iterable[Probe[Any]]) -> dict[str, Output]:
    """Undo `batch_script`'s framing: {probe name: Output}. `probes` are the probes the script
    was made of, in the same order (the host sees only their indices)."""
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
    for index, suffix in files:
        if suffix != "rc" or not index.isdigit() or int(index) >= len(names):
            continue
        try:
            code = int(files[(index, "rc")].decode().strip())
        except ValueError:
            continue  # the probe was still running when the script ended
        outputs[names[int(index)]] = Output(
            code,
            files.get((index, "out"), b"").decode("utf-8", "replace"),
            files.get((index, "err"), b"").decode("utf-8", "replace"),
        )
    return outputs
