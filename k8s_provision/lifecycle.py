"""A cluster after `up`: plan (what `up` would change), reset, add and remove hosts."""

from __future__ import annotations

import difflib
import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k8s_provision import provision, runner
from k8s_provision.errors import OperationFailed, UsageError
from k8s_provision.model import Cluster, Host
from k8s_provision.ssh import HostSession

# reset.yml refuses to run without it; the CLI asks the operator first.
RESET_CONFIRMED = {"k8s_reset_confirm": "yes"}
PACKAGE_ACTIONS = {"package", "yum", "dnf", "apt"}
SERVICE_ACTIONS = {"service", "systemd", "systemd_service"}
# Their changes arrive as diff events; their plain "changed" events would repeat them.
FILE_ACTIONS = {"template", "copy", "file", "lineinfile", "blockinfile", "replace"}


@dataclass(frozen=True)
class Change:
    host: str
    kind: str  # file, package, service or task
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
    for event in events:
        kind = event["event"]
        if kind == "diff" and event.get("changed", True):
            for entry in event.get("diffs", []):
                found = _file_diff(entry)
                if found:
                    changes.append(Change(event["host"], "file", found[0], found[1]))
        elif kind == "ok" and event.get("changed"):
            action = _short(str(event.get("action", "")))
            if action in FILE_ACTIONS:
                continue
            state = str(event.get("state") or "")
            names = event.get("names") or []
            if action in PACKAGE_ACTIONS:
                changes += [Change(event["host"], "package", n, state or "present") for n in names]
            elif action in SERVICE_ACTIONS:
                changes += [Change(event["host"], "service", n, state or "changed") for n in names]
            else:
                changes.append(Change(event["host"], "task", event["task"], "would change"))
    return list(dict.fromkeys(changes))


def plan(
    inventory_path: Path, options: runner.RunOptions, *, limit: str | None = None
) -> list[Change]:
    """What `up` would change, from a check-mode run of site.yml with diffs. Changes nothing."""
    result = runner.run_checked(
        "site.yml", inventory_path, options, limit=limit, check=True, diff=True
    )
    return changes_from_events(result.events)


def reset(
    inventory_path: Path, options: runner.RunOptions, *, limit: str | None = None
) -> runner.RunResult:
    """Run reset.yml: stop and remove everything site.yml set up. The caller has confirmed."""
    return runner.run_checked(
        "reset.yml", inventory_path, options, limit=limit, extra_vars=RESET_CONFIRMED
    )


def _named_hosts(cluster: Cluster, names: list[str]) -> list[Host]:
    unknown = [n for n in names if n not in {h.name for h in cluster.hosts}]
    if unknown:
        raise UsageError(
            f"{', '.join(unknown)}: not in {cluster.source}; add the host to the inventory first"
        )
    return [cluster.host(n) for n in dict.fromkeys(names)]


def add_node(
    cluster: Cluster, inventory_path: Path, names: list[str], options: runner.RunOptions
) -> runner.RunResult:
    """Bring hosts just added to the inventory into the running cluster. The new hosts are
    preflighted; then site.yml converges every host, which changes nothing on the others
    unless the new hosts change their configuration (a new etcd member is added to the
    cluster with `member add`, one at a time, and joins as `existing`)."""
    provision.check_hosts(cluster, _named_hosts(cluster, names))
    return provision.apply(inventory_path, options)


# etcd may still be electing or catching up right after another membership change.
REMOVE_ATTEMPTS = 6
REMOVE_RETRY_DELAY = 5.0


@dataclass(frozen=True)
class Removal:
    host: str
    step: str
    detail: str


def _last_line(text: str) -> str:
    """etcdctl logs JSON warnings before the line that says what failed."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no output)"


def _etcdctl(cluster: Cluster, members: list[Host]) -> str:
    endpoints = ",".join(f"http://{h.ip}:{cluster.settings.etcd_client_port}" for h in members)
    return f"ETCDCTL_API=3 etcdctl --endpoints={endpoints} --dial-timeout=3s --command-timeout=10s"


def _remove_etcd_member(cluster: Cluster, host: Host, remaining: list[Host]) -> Removal:
    session = HostSession(remaining[0])
    try:
        etcdctl = _etcdctl(cluster, remaining)
        listed = session.run(f"{etcdctl} member list -w json")
        if not listed.ok:
            raise OperationFailed(
                f"cannot list the etcd members from {remaining[0].name} before removing"
                f" {host.name}: {(listed.error or listed.stderr).strip()}"
            )
        members = json.loads(listed.stdout).get("members", [])
        ids = [m["ID"] for m in members if m.get("name") == host.name]
        if not ids:
            return Removal(host.name, "etcd", "not an etcd member any more")
        member_id = f"{ids[0]:x}"
        for _ in range(REMOVE_ATTEMPTS):
            removed = session.run(f"{etcdctl} member remove {member_id}")
            if removed.ok or "not found" in removed.stderr:
                break
            time.sleep(REMOVE_RETRY_DELAY)
        if not removed.ok and "not found" not in removed.stderr:
            raise OperationFailed(
                f"etcd member remove {member_id} ({host.name}) failed:"
                f" {_last_line(removed.error or removed.stderr)}"
            )
        return Removal(host.name, "etcd", f"member {member_id} removed")
    finally:
        session.close()


def _delete_kube_node(cluster: Cluster, host: Host) -> Removal:
    s = cluster.settings
    master = cluster.master
    session = HostSession(master)
    try:
        server = f"http://{master.ip}:{s.kube_api_port}"
        probe = session.run(f"curl -sS -m 5 -o /dev/null {server}/healthz", timeout=20)
        if not probe.ok:
            return Removal(host.name, "kubernetes", f"skipped: no API answers at {server}")
        name = shlex.quote(host.kube_node_name)
        deleted = session.run(
            f"kubectl -s {server} delete node {name} --ignore-not-found", timeout=60
        )
        if not deleted.ok:
            raise OperationFailed(
                f"kubectl delete node {host.kube_node_name} failed on {master.name}:"
                f" {_last_line(deleted.error or deleted.stderr)}"
            )
        return Removal(host.name, "kubernetes", f"node {host.kube_node_name} deleted")
    finally:
        session.close()


def remove_node(
    cluster: Cluster, inventory_path: Path, names: list[str], options: runner.RunOptions
) -> list[Removal]:
    """Take hosts out of the cluster: delete them from Kubernetes where an API answers, remove
    their etcd members (one at a time, through a remaining member), then run reset.yml on them
    only. The inventory still lists them; the caller tells the operator to delete them there
    and rerun `up` so the other hosts stop naming them."""
    hosts = _named_hosts(cluster, names)
    if cluster.master in hosts:
        raise UsageError(f"{cluster.master.name} is the master; remove-node cannot remove it")
    leaving = {h.name for h in hosts}
    remaining = [cluster.host(n) for n in cluster.etcd if n not in leaving]
    if not remaining:
        raise UsageError("that would remove every etcd member; use `reset` to tear down")
    steps: list[Removal] = []
    for host in hosts:
        if host.is_node:
            steps.append(_delete_kube_node(cluster, host))
        if host.is_etcd:
            steps.append(_remove_etcd_member(cluster, host, remaining))
    limit = ",".join(h.name for h in hosts)
    runner.run_checked(
        "reset.yml", inventory_path, options, limit=limit, extra_vars=RESET_CONFIRMED
    )
    steps += [
        Removal(h.name, "reset", "services stopped, configuration and data removed") for h in hosts
    ]
    return steps
