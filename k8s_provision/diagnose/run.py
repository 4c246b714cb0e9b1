"""diagnose end to end: check the bundle path, collect, evaluate, write the bundle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from k8s_provision.diagnose import bundle, collection
from k8s_provision.diagnose.collection import Collected
from k8s_provision.diagnose.evaluation import Evaluation, evaluate
from k8s_provision.diagnose.match import Finding
from k8s_provision.diagnose.plan import journal_since
from k8s_provision.model import Cluster
from k8s_provision.probes.collector import Progress
from k8s_provision.report import counted


@dataclass(frozen=True)
class Diagnosis:
    evaluation: Evaluation
    bundle: Path
    collected: Mapping[str, Collected]

    @property
    def ok(self) -> bool:
        return self.evaluation.ok

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.evaluation.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "findings": [f.as_dict() for f in self.findings],
            "bundle": str(self.bundle),
        }


def diagnose(
    cluster: Cluster,
    *,
    inventory: str,
    output: Path | None = None,
    since: str = "1h",
    progress: Progress | None = None,
) -> Diagnosis:
    """Collect every host, find the faults and write the bundle."""
    since_arg = journal_since(since)
    created = datetime.now(UTC)
    bundle_path = output or bundle.default_bundle_path(created)
    bundle.check_output_path(bundle_path)
    collected = collection.collect(cluster, since_arg, progress=progress)
    evaluation = evaluate(cluster, collected, inventory=inventory, since=since_arg)
    root = bundle_path.name.removesuffix(".tar.gz").removesuffix(".tgz") or "k8s-provision-diagnose"
    files = bundle.bundle_files(
        cluster,
        collected,
        evaluation,
        root=root,
        inventory=inventory,
        since=since,
        created=created,
    )
    bundle.write_bundle(bundle_path, root, files, mtime=created.timestamp())
    return Diagnosis(evaluation, bundle_path, collected)


def failure_summary(findings: Sequence[Finding]) -> str:
    errors = [f for f in findings if f.severity == "error"]
    first = errors[0]
    return (
        f"diagnose: {counted(len(errors), 'error')}; first:"
        f" {first.host} {first.component} [{first.id}]"
    )
