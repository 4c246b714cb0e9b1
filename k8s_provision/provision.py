"""The pieces of `up` before site.yml: which hosts a --limit selects, and their preflight over
SSH (the phases in k8s_provision.phases run them)."""

from __future__ import annotations

from k8s_provision.errors import OperationFailed
from k8s_provision.model import Cluster, Host
from k8s_provision.preflight import preflight
from k8s_provision.report import Check


def limited_hosts(cluster: Cluster, limit: str | None) -> list[str]:
    """Host names a simple --limit selects (comma-separated names or groups of the model's
    roles); anything fancier is left to ansible-playbook and every host is preflighted."""
    if not limit:
        return [h.name for h in cluster.hosts]
    role_groups = {"masters": cluster.masters, "nodes": cluster.nodes, "etcd": cluster.etcd}
    names: list[str] = []
    for raw in limit.split(","):
        word = raw.strip()
        if word in role_groups:
            names += role_groups[word]
        elif any(h.name == word for h in cluster.hosts):
            names.append(word)
        else:
            return [h.name for h in cluster.hosts]
    return list(dict.fromkeys(names))


def check_hosts(cluster: Cluster, hosts: list[Host]) -> list[Check]:
    """Preflight `hosts`; raises OperationFailed when any check fails, returns the warnings."""
    problems = preflight(cluster, hosts)
    failures = [p for p in problems if p.status == "fail"]
    if failures:
        failed = sorted({p.host for p in failures})
        raise OperationFailed(
            f"preflight failed on {', '.join(failed)}; no host was changed",
            details=[f"{p.host}: {p.check}: {p.detail}" for p in failures],
        )
    return problems
