"""The one collector verify and diagnose share: every host in parallel, one SSH session per
host, ONE command there running all of the host's probes (see `batch`), then optionally the
host's clock read on the same open session."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from k8s_provision import ssh
from k8s_provision.model import Cluster, Host
from k8s_provision.probes.base import HostFacts, Probe
from k8s_provision.probes.batch import batch_script, parse_batch

CLOCK_TIMEOUT = 10.0

Plan = Callable[[Host], Sequence[Probe[Any]]]  # the probes a host runs
Progress = Callable[[str, str, str], None]  # (host, stage, detail): collecting, done, failed


@dataclass(frozen=True)
class Clock:
    """A host's clock, read with `date` right after the probes."""

    offset: float | None  # host clock minus this machine's, in seconds
    error: float  # half the round trip of the `date` command
    host_time: float | None  # the host's clock when collection ended


@dataclass(frozen=True)
class Collection:
    """One host's probe outputs (or the reason they could not be had), the command each probe
    ran, the host's clock when asked for, and how long it all took."""

    facts: HostFacts
    commands: dict[str, str]
    clock: Clock | None = None
    elapsed: float = 0.0


def _read_clock(session: ssh.HostSession) -> Clock:
    # On the open session the round trip is milliseconds, not a handshake.
    sent = time.time()
    result = session.run("date +%s.%N", timeout=CLOCK_TIMEOUT)
    received = time.time()
    try:
        host_time: float | None = float(result.stdout.strip())
    except ValueError:
        host_time = None
    offset = None if host_time is None else host_time - (sent + received) / 2
    return Clock(offset, (received - sent) / 2, host_time)


def _collect_host(
    session: ssh.HostSession,
    plan: Plan,
    *,
    what: str,
    script_timeout: float,
    clock: bool,
    progress: Progress | None,
) -> Collection:
    host = session.host
    started = time.monotonic()
    if progress:
        progress(host.name, "collecting", f"{host.address}:{host.connection.port or 22}")
    probes = plan(host)
    commands = {p.name: p.command for p in probes}
    result = session.run(batch_script(probes), timeout=script_timeout)
    if result.error is not None:
        if progress:
            progress(host.name, "failed", result.error)
        return Collection(HostFacts(host.name, error=result.error), commands)
    outputs = parse_batch(result.stdout, probes)
    error = None
    if any(p.name not in outputs for p in probes):
        # The script itself failed: sudo refused, no /bin/sh, no mktemp or timeout.
        why = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        error = f"the {what} script failed on {host.address} (exit {result.exit_code}): {why[0]}"
    reading = _read_clock(session) if clock else None
    elapsed = time.monotonic() - started
    if progress:
        progress(host.name, "failed" if error else "done", error or f"{elapsed:.1f} s")
    return Collection(
        HostFacts(host.name, outputs=outputs, error=error), commands, reading, elapsed
    )


def collect(
    cluster: Cluster,
    plan: Plan,
    *,
    what: str,
    script_timeout: float,
    connect_timeout: float = ssh.CONNECT_TIMEOUT,
    clock: bool = False,
    progress: Progress | None = None,
) -> dict[str, Collection]:
    """Run `plan(host)`'s probes on every host; an unreachable host is a result, never an
    exception. `what` names the script in errors; `progress` is called from worker threads."""

    def work(session: ssh.HostSession) -> Collection:
        return _collect_host(
            session,
            plan,
            what=what,
            script_timeout=script_timeout,
            clock=clock,
            progress=progress,
        )

    return ssh.on_hosts(list(cluster.hosts), work, timeout=connect_timeout)
