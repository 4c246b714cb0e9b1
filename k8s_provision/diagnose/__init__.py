"""Diagnose a cluster: collect everything an operator looks at when it misbehaves into a support
bundle, and name each fault with its host and the fix.

This package owns the fault finding and the bundle; what runs on the hosts and how its output
is read belongs to `k8s_provision.probes`, the health checks it reuses to `verify`. Modules:
- `plan`: what is collected from each host; `collection`: collecting it (the shared
  collector, plus the host's clock).
- `drift`: files on the hosts against `render`; `events`: everything observed, as events.
- `signatures`: the fault signatures of signatures.yml; `match`: events into ranked findings.
- `evaluation`: all of the above, pure; `redact`: hiding secrets in everything written or shown.
- `bundle`: the tar.gz; `run`: the whole diagnose."""

from __future__ import annotations

from k8s_provision.diagnose.bundle import bundle_files, default_bundle_path, write_bundle
from k8s_provision.diagnose.collection import Collected, collect
from k8s_provision.diagnose.evaluation import Evaluation, evaluate
from k8s_provision.diagnose.match import Finding, findings_text, host_vars
from k8s_provision.diagnose.plan import journal_since, probes_for
from k8s_provision.diagnose.run import Diagnosis, diagnose, failure_summary
from k8s_provision.probes.collector import Progress

__all__ = [
    "Collected",
    "Diagnosis",
    "Evaluation",
    "Finding",
    "Progress",
    "bundle_files",
    "collect",
    "default_bundle_path",
    "diagnose",
    "evaluate",
    "failure_summary",
    "findings_text",
    "host_vars",
    "journal_since",
    "probes_for",
    "write_bundle",
]
