"""Evaluate (pure): verify's checks on the collected outputs, the files compared with
`render`, events from both, and the findings the signatures make of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from k8s_provision import verify
from k8s_provision.diagnose.collection import Collected
from k8s_provision.diagnose.drift import Drift, drift
from k8s_provision.diagnose.events import events
from k8s_provision.diagnose.match import Finding, match_signatures
from k8s_provision.diagnose.signatures import Signature, load_signatures
from k8s_provision.model import Cluster
from k8s_provision.report import Report


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
    failed = {c.check for c in report.checks if c.status != "pass"}
    passed = frozenset(c.check for c in report.checks if c.check not in failed)
    findings = match_signatures(
        cluster,
        signatures if signatures is not None else load_signatures(),
        events(cluster, collected, report, drifts, since),
        inventory=inventory,
        since=since,
        host_times={name: got.host_time for name, got in collected.items()},
        healthy=healthy,
        passed=passed,
    )
    return Evaluation(report, tuple(drifts), tuple(findings))
