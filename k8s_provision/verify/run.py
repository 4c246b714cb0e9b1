"""verify end to end: collect every host's probes over SSH, evaluate them into a report."""

from __future__ import annotations

from k8s_provision import probes, ssh
from k8s_provision.model import Cluster
from k8s_provision.probes import HostFacts
from k8s_provision.report import Report, counted
from k8s_provision.verify.evaluation import evaluate
from k8s_provision.verify.plan import probes_for

SCRIPT_TIMEOUT = probes.PROBE_TIMEOUT + 15.0  # the whole script, probes run in parallel


def collect(
    cluster: Cluster,
    *,
    connect_timeout: float = ssh.CONNECT_TIMEOUT,
    script_timeout: float = SCRIPT_TIMEOUT,
) -> dict[str, HostFacts]:
    """Run every host's probes over SSH, all hosts in parallel, one session and one command
    per host. A host whose script failed keeps only the error: its checks are not judged."""
    collected = probes.collect(
        cluster,
        lambda host: probes_for(cluster, host),
        what="check",
        script_timeout=script_timeout,
        connect_timeout=connect_timeout,
    )
    return {
        name: got.facts if got.facts.error is None else HostFacts(name, error=got.facts.error)
        for name, got in collected.items()
    }


def verify(cluster: Cluster, *, connect_timeout: float = ssh.CONNECT_TIMEOUT) -> Report:
    """Run every check on every host of `cluster` and return the report."""
    return evaluate(cluster, collect(cluster, connect_timeout=connect_timeout))


def failure_summary(report: Report) -> str:
    """One line for the error the CLI prints when checks failed."""
    failed = report.failed
    listed = ", ".join(f"{c.host} {c.check}" for c in failed[:6])
    more = f" and {len(failed) - 6} more" if len(failed) > 6 else ""
    return f"verify: {counted(len(failed), 'check')} failed: {listed}{more}"
