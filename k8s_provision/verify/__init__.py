"""Prove a cluster healthy: the checks operators run by hand (systemctl, etcdctl, the flannel keys
in etcd, docker0, the apiserver's /healthz, kubectl get componentstatuses / nodes), run over SSH
on every host in parallel and turned into a `Report`.

This package owns the checks and their verdicts; what runs on the hosts and how its output is
read belongs to `k8s_provision.probes`. Modules:
- `plan`: which probes each host runs; `run`: collect them (one SSH session and one batched
  script per host) and evaluate.
- `context`: the collected facts as the checks read them; `evaluation`: every check, per
  host.
- `units`, `etcd`, `flannel`, `api`, `security`: the checks of one component each.

Rules every check follows:
- A host SSH cannot reach (or whose script cannot run) gets exactly one row, a failed `ssh`
  check with the precise error; its other checks are omitted. Checks on reachable hosts that
  need data from an unreachable one are `skip` with the reason.
- A component that is not installed on a host (its unit is `not-found`) makes its checks
  `skip` with the reason, never `pass`.
- Security findings are `warn`: they do not fail verify.
- (host, check) pairs are unique: one row per check and host.

The apiserver is checked three ways, since `kubectl get componentstatuses` is deprecated since
1.19 and must never be the only API check: /healthz, componentstatuses and nodes."""

from __future__ import annotations

from k8s_provision.verify.evaluation import evaluate
from k8s_provision.verify.plan import probes_for
from k8s_provision.verify.run import collect, failure_summary, verify

__all__ = ["collect", "evaluate", "failure_summary", "probes_for", "verify"]
