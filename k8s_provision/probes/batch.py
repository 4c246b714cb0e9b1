"""Many probes in one POSIX sh script, run in parallel on the host, and the framing that
carries each probe's exit code, stdout and stderr back through one SSH command.

The script costs a fixed handful of processes per host plus two forks of `sh` per probe:
every probe runs in a subshell of one `sh`, which one `timeout` bounds for all of them (they
start together, so one deadline is the same bound as one per probe, without a `timeout` and
often a `sh -c` per probe); each writes its exit code, stdout and stderr to files of a private
directory, each file starting with a header line that names it; at the end one `cat` sends
them all. The header carries a random token of this process, so no probe's output can pass for
one by accident. fork/exec is most of what verify and diagnose spend of a host's CPU, and in
the lab twelve hosts share two cores (the sizes and base64 this framing replaced cost a `stat`,
a `base64` and a pipe: about 4 ms of a host's CPU per run, a tenth of the script)."""

from __future__ import annotations

import itertools
import re
import secrets
import shlex
from collections.abc import Iterable
from typing import Any

from k8s_provision.probes.base import PROBE_TIMEOUT, TIMED_OUT, Output, Probe

# Starts each file's header line, and the line after the last file.
MARK = f"@@k8s-provision-{secrets.token_hex(16)}@@"
_HEADER = re.compile(re.escape(MARK) + r" (?:(?P<file>\d+\.(?:rc|out|err))|(?P<end>end))\n")


def _job(index: int, command: str) -> str:
    # `eval` in a subshell: each probe is parsed on its own (a probe that does not parse fails
    # alone), and its `exit` or `cd` ends only that subshell. The subshell that runs it writes
    # the exit code last, so a probe killed at the deadline leaves no code.
    # `$k8sp_mark` is MARK, set once at the top of the jobs and unset for the probe itself.
    out, err, rc = (f'"$0/{index}.{suffix}"' for suffix in ("out", "err", "rc"))
    return (
        f'{{ echo "$k8sp_mark {index}.out" >{out}; echo "$k8sp_mark {index}.err" >{err};'
        f" (unset k8sp_mark; eval {shlex.quote(command)}) >>{out} 2>>{err} </dev/null;"
        f' printf "$k8sp_mark {index}.rc\\n%s\\n" $? >{rc}; }} &'
    )


def batch_script(probes: Iterable[Probe[Any]], timeout: int = PROBE_TIMEOUT) -> str:
    """One POSIX sh script running every probe in parallel for at most `timeout` seconds (then
    TERM to all of them, KILL 2 s later). It prints each probe's files, each after a header
    line `MARK <index>.<out|err|rc>`, then `MARK end`."""
    jobs = "\n".join(
        [f"k8sp_mark={MARK}", *(_job(i, p.command) for i, p in enumerate(probes)), "wait"]
    )
    lines = [
        "d=$(mktemp -d) || exit 125",
        "trap 'rm -rf \"$d\"' EXIT",
        f'timeout -k 2 {timeout} sh -c {shlex.quote(jobs)} "$d"',
        'cd "$d" || exit 125',
        "cat -- *",
        f"echo '{MARK} end'",
    ]
    return "\n".join(lines) + "\n"


def parse_batch(text: str, probes: Iterable[Probe[Any]]) -> dict[str, Output]:
    """Undo `batch_script`'s framing: {probe name: Output}. `probes` are the probes the script
    was made of, in the same order (the host sees only their indices). A probe without an exit
    code was killed at the deadline: it reads as `timeout`'s 124, with what it printed. Without
    the end line (sudo refused, the script cut short) there is no output."""
    headers = list(_HEADER.finditer(text))
    if not headers or headers[-1].group("end") is None:
        return {}
    files: dict[str, str] = {}
    for header, following in itertools.pairwise(headers):
        name = header.group("file")
        if name is None:
            return {}
        files[name] = text[header.end() : following.start()]
    outputs: dict[str, Output] = {}
    for index, name in enumerate(p.name for p in probes):
        try:
            code = int(files.get(f"{index}.rc", "").strip())
        except ValueError:
            code = TIMED_OUT
        outputs[name] = Output(code, files.get(f"{index}.out", ""), files.get(f"{index}.err", ""))
    return outputs
