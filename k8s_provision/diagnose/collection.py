"""Collect every host for diagnose through the shared probe collector, with each host's clock
read on the open session after the probes (for clock skew: a round trip of milliseconds, not
the seconds the collection takes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from k8s_provision import probes, ssh
from k8s_provision.diagnose.plan import probes_for
from k8s_provision.model import Cluster
from k8s_provision.probes import HostFacts, Output, Probe
from k8s_provision.probes.collector import Progress

T = TypeVar("T")

SCRIPT_TIMEOUT = probes.PROBE_TIMEOUT + 40.0  # probes run in parallel; then the output travels


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

    def read(self, probe: Probe[T]) -> T | None:
        return self.facts.read(probe)


def _collected(got: probes.Collection) -> Collected:
    clock = got.clock
    return Collected(
        got.facts.host,
        got.facts,
        got.commands,
        clock.offset if clock else None,
        clock.error if clock else 0.0,
        clock.host_time if clock else None,
        got.elapsed,
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
    collected = probes.collect(
        cluster,
        lambda host: probes_for(cluster, host, since),
        what="collection",
        script_timeout=SCRIPT_TIMEOUT,
        connect_timeout=connect_timeout,
        clock=True,
        progress=progress,
    )
    return {name: _collected(got) for name, got in collected.items()}
