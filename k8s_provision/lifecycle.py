"""A cluster after `up`: the changes a check-mode run reports (plan), and the pieces of add-node
and remove-node that are not etcd membership (k8s_provision.membership)."""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass
from typing import Any

from k8s_provision import facts
from k8s_provision.errors import OperationFailed, UsageError
from k8s_provision.model import Cluster, Host
from k8s_provision.transport import Transport

# reset.yml refuses to run without it; the CLI asks the operator first.
RESET_CONFIRMED = {"k8s_reset_confirm": "yes"}
# The tag of the tasks that announce a migration of the running cluster (etcd to tls).
MIGRATION_TAG = "k8s_provision_migration"
PACKAGE_ACTIONS = {"package", "yum", "dnf", "apt"}
SERVICE_ACTIONS = {"service", "systemd", "systemd_service"}
# Their changes arrive as diff events; their plain "changed" events would repeat them.
FILE_ACTIONS = {"template", "copy", "file", "lineinfile", "blockinfile", "replace"}


@dataclass(frozen=True)
class Change:
    host: str
    kind: str  # migration, file, package, service or task
    path: str  # file path, package or service name, or task name
    diff: str


def _short(action: str) -> str:
    return action.rsplit(".", 1)[-1]


def _file_diff(entry: dict[str, Any]) -> tuple[str, str] | None:
    # before_header names the file on the host; the template action's after_header names its
    # temporary source.
    path = str(entry.get("before_header") or entry.get("after_header") or "")
    if entry.get("prepared"):
        return path, str(entry["prepared"])
    before, after = entry.get("before"), entry.get("after")
    if isinstance(before, dict) or isinstance(after, dict):
        old, new = dict(before or {}), dict(after or {})
        path = path or str(new.get("path") or old.get("path") or "")
        lines = [
            f"{k}: {old.get(k)} -> {new.get(k)}" for k in sorted(new) if old.get(k) != new.get(k)
        ]
        return (path, "\n".join(lines)) if lines else None
    if before == after:
        return None
    text = "".join(
        difflib.unified_diff(
            str(before or "").splitlines(keepends=True),
            str(after or "").splitlines(keepends=True),
            fromfile=f"{path} (on the host)",
            tofile=f"{path} (planned)",
        )
    )
    return path, text


def changes_from_events(events: list[dict[str, Any]]) -> list[Change]:
    """Turn a check-mode run's events into per-host changes, in run order, without repeats."""
    changes: list[Change] = []
    diffed: set[tuple[str, str]] = set()  # ansible reports a task's diff before its result
    for event in events:
        kind = event["event"]
        if kind == "diff" and event.get("changed", True):
            diffed.add((event["host"], event["task"]))
            for entry in event.get("diffs", []):
                found = _file_diff(entry)
                if found:
                    changes.append(Change(event["host"], "file", found[0], found[1]))
        elif kind == "ok" and event.get("changed"):
            action = _short(str(event.get("action", "")))
            if action in FILE_ACTIONS:
                # A task that shows no diff (the PKI's: keys stay out of every output) still
                # changes its files: plan names the task.
                if (event["host"], event["task"]) not in diffed:
                    changes.append(Change(event["host"], "task", event["task"], "would change"))
                continue
            state = str(event.get("state") or "")
            names = event.get("names") or []
            if MIGRATION_TAG in (event.get("tags") or []):
                changes.append(Change(event["host"], "migration", event["task"], event["msg"]))
            elif action in PACKAGE_ACTIONS:
                changes += [Change(event["host"], "package", n, state or "present") for n in names]
            elif action in SERVICE_ACTIONS:
                changes += [Change(event["host"], "service", n, state or "changed") for n in names]
            else:
                changes.append(Change(event["host"], "task", event["task"], "would change"))
    # A migration changes how the cluster runs as a whole: it leads the plan.
    unique = list(dict.fromkeys(changes))
    return sorted(unique, key=lambda change: change.kind != "migration")


def named_hosts(cluster: Cluster, names: list[str]) -> list[Host]:
    unknown = [n for n in names if n not in {h.name for h in cluster.hosts}]
    if unknown:
        raise UsageError(
            f"{', '.join(unknown)}: not in {cluster.source}; add the host to the inventory first"
        )
    return [cluster.host(n) for n in dict.fromkeys(names)]


@dataclass(frozen=True)
class Removal:
    host: str
    step: str
    detail: str


def _last_line(text: str) -> str:
    """etcdctl logs JSON warnings before the line that says what failed."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no output)"


def delete_kube_node(cluster: Cluster, transport: Transport, host: Host) -> Removal:
    master = cluster.master
    api = facts.api_client(cluster)
    probe = transport.run(
        master, f"curl -sS -m 5{api.curl_tls} -o /dev/null {api.url}/healthz", timeout=20
    )
    if not probe.ok:
        return Removal(host.name, "kubernetes", f"skipped: no API answers at {api.url}")
    deleted = transport.run(
        master,
        api.kubectl
        + " "
        + shlex.join(["delete", "node", host.kube_node_name, "--ignore-not-found"]),
        timeout=60,
    )
    if not deleted.ok:
        raise OperationFailed(
            f"kubectl delete node {host.kube_node_name} failed on {master.name}:"
            f" {_last_line(deleted.error or deleted.stderr)}"
        )
    return Removal(host.name, "kubernetes", f"node {host.kube_node_name} deleted")
