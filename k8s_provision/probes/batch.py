"""Many probes in one POSIX sh script, run in parallel on the host, and the framing that
carries each probe's exit code, stdout and stderr back through one SSH command."""

from __future__ import annotations

import base64
import binascii
import shlex
from collections.abc import Iterable
from typing import Any

from k8s_provision.probes.base import PROBE_TIMEOUT, Output, Probe

MARK = "@@k8s-provision-verify@@"


def batch_script(probes: Iterable[Probe[Any]], timeout: int = PROBE_TIMEOUT) -> str:
    """One POSIX sh script running every probe in parallel; for each it prints a marker line
    `<mark> <name> <exit code>`, then its stdout and its stderr as one base64 line each."""
    probes = list(probes)
    lines = [
        "d=$(mktemp -d) || exit 125",
        "trap 'rm -rf \"$d\"' EXIT",
    ]
    for i, probe in enumerate(probes):
        lines.append(
            f"{{ timeout -k 2 {timeout} sh -c {shlex.quote(probe.command)}"
            f' >"$d/{i}.out" 2>"$d/{i}.err" </dev/null; echo $? >"$d/{i}.rc"; }} &'
        )
    lines.append("wait")
    for i, probe in enumerate(probes):
        lines += [
            f'printf "%s %s %s\\n" {MARK} {shlex.quote(probe.name)} "$(cat "$d/{i}.rc")"',
            f'base64 -w0 <"$d/{i}.out"; echo',
            f'base64 -w0 <"$d/{i}.err"; echo',
        ]
    return "\n".join(lines) + "\n"


def parse_batch(text: str) -> dict[str, Output]:
    """Undo `batch_script`'s framing: {probe name: Output}."""
    outputs: dict[str, Output] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) != 3 or words[0] != MARK or i + 2 >= len(lines):
            continue
        try:
            code = int(words[2])
            out = base64.b64decode(lines[i + 1], validate=True).decode("utf-8", "replace")
            err = base64.b64decode(lines[i + 2], validate=True).decode("utf-8", "replace")
        except (ValueError, binascii.Error):
            continue
        outputs[words[1]] = Output(code, out, err)
    return outputs
