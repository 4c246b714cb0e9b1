"""The API server's checks: /healthz, kubectl get componentstatuses and kubectl get nodes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from k8s_provision import facts
from k8s_provision.model import Host
from k8s_provision.probes import PROBE_TIMEOUT, TIMED_OUT, Output
from k8s_provision.probes.http import KUBECTL_GET, KUBECTL_KINDS, curl_error, split_http
from k8s_provision.report import Check
from k8s_provision.verify.context import Context

NODE_PRESSURE_CONDITIONS = ("OutOfDisk", "MemoryPressure", "DiskPressure")


def _api_down(
    ctx: Context, master: Host, name: str, healthz: Output | None, *, for_kubectl: bool
) -> Check | None:
    """The row for an API check when nothing answers on the API port, else None: fail when
    kube-apiserver is installed, skip with the reason when it is not."""
    if healthz is not None and split_http(healthz)[0] is not None:
        return None
    api = f"{master.ip}:{ctx.cluster.settings.kube_api_port}"
    if not ctx.installed(master, "kube-apiserver"):
        return Check(
            master.name,
            name,
            "skip",
            f"kube-apiserver is not installed on this host and nothing answers on {api}",
        )
    if for_kubectl:
        return Check(
            master.name,
            name,
            "fail",
            f"cannot run: nothing answers on {api} (see apiserver:healthz)",
        )
    error = curl_error(healthz) if healthz is not None else "no output"
    return Check(
        master.name,
        name,
        "fail",
        f"nothing answers on {api}: {error}; see journalctl -u kube-apiserver",
    )


def healthz_check(ctx: Context, master: Host) -> Check:
    name = "apiserver:healthz"
    output = ctx.output(master.name, "healthz")
    down = _api_down(ctx, master, name, output, for_kubectl=False)
    if down is not None:
        return down
    assert output is not None
    code, body = split_http(output)
    url = f"{facts.api_url(ctx.cluster)}/healthz"
    if code == 200 and body.strip() == "ok":
        return Check(master.name, name, "pass", f"{url}: ok")
    text = " ".join(body.split())[:300]
    return Check(master.name, name, "fail", f"{url} answered HTTP {code}: {text}")


def kubectl_lists(
    ctx: Context, master: Host, checks: Mapping[str, str]
) -> dict[str, Check | dict[str, Any]]:
    """{resource: {"items": its items} or its failed Check} from verify's one `kubectl get
    componentstatuses,nodes`; `checks` names each resource's check. When kubectl failed, every
    check fails with kubectl's own error (any list it printed may be missing one resource)."""
    healthz = ctx.output(master.name, "healthz")
    output = ctx.output(master.name, KUBECTL_GET)
    problem, items = _kubectl_items(output)
    found: dict[str, Check | dict[str, Any]] = {}
    for resource, name in checks.items():
        down = _api_down(ctx, master, name, healthz, for_kubectl=True)
        if down is not None:
            found[resource] = down
        elif problem is not None:
            found[resource] = Check(master.name, name, "fail", problem)
        else:
            kind = KUBECTL_KINDS[resource]
            found[resource] = {"items": [i for i in items if i.get("kind") == kind]}
    return found


def _kubectl_items(output: Output | None) -> tuple[str | None, list[dict[str, Any]]]:
    """(why kubectl's output cannot be judged, or None; the items of the List it printed)."""
    what = f"kubectl get {','.join(KUBECTL_KINDS)}"
    if output is None:
        return "no output", []
    if output.exit_code == 127:
        return "kubectl is not installed on this host", []
    if output.exit_code == TIMED_OUT:
        return f"{what} timed out after {PROBE_TIMEOUT} s", []
    if output.exit_code != 0:
        lines = [line for line in output.stderr.splitlines() if line.strip()] or [output.text]
        return f"{what} failed: {lines[-1]}", []
    try:
        data = json.loads(output.stdout)
    except ValueError:
        return f"{what} printed no JSON", []
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return f"{what} printed no List", []
    return None, [i for i in items if isinstance(i, dict)]


def componentstatus_check(host: str, data: Mapping[str, Any], etcd_members: int) -> Check:
    """Every component Healthy, and each expected one reported: scheduler, controller-manager
    and one etcd-N per etcd server the apiserver uses."""
    name = "kubectl:cs"
    healthy: list[str] = []
    unhealthy: list[str] = []
    for item in data.get("items") or []:
        component = str((item.get("metadata") or {}).get("name", "?"))
        condition: dict[str, Any] = next(
            (c for c in item.get("conditions") or [] if c.get("type") == "Healthy"), {}
        )
        if condition.get("status") == "True":
            healthy.append(component)
            continue
        why = (
            "; ".join(str(condition[k]) for k in ("message", "error") if condition.get(k))
            or f"Healthy={condition.get('status', 'missing')}"
        )
        unhealthy.append(f"{component} Unhealthy ({why})")
    expected = ["controller-manager", "scheduler", *(f"etcd-{i}" for i in range(etcd_members))]
    reported = set(healthy) | {u.split(" ", 1)[0] for u in unhealthy}
    missing = [c for c in expected if c not in reported]
    problems = unhealthy + ([f"not reported: {', '.join(missing)}"] if missing else [])
    if problems:
        return Check(host, name, "fail", "; ".join(problems))
    return Check(host, name, "pass", f"Healthy: {', '.join(healthy)}")


def _conditions(item: Mapping[str, Any]) -> dict[Any, Mapping[str, Any]]:
    return {c.get("type"): c for c in (item.get("status") or {}).get("conditions") or []}


def node_not_ready(node: str, item: Mapping[str, Any] | None) -> str:
    """Why `node` is not Ready, from its Node object (None when it is not registered); an
    empty string when it is Ready. The roles' wait for each node says the same."""
    if item is None:
        return (
            f"{node} is not registered (its kubelet never reached the API; see"
            " journalctl -u kubelet on it)"
        )
    ready = _conditions(item).get("Ready", {})
    if ready.get("status") == "True":
        return ""
    reason = ": ".join(str(ready[k]) for k in ("reason", "message") if ready.get(k))
    state = f"Ready={ready.get('status', 'missing')}"
    return f"{node} NotReady ({state}{', ' + reason if reason else ''})"


def nodes_check(host: str, data: Mapping[str, Any], expected: Iterable[str]) -> Check:
    """Every inventory node (by kube_node_name) registered and Ready, with no pressure."""
    name = "kubectl:nodes"
    by_name = {
        str((item.get("metadata") or {}).get("name")): item for item in data.get("items") or []
    }
    expected = list(expected)
    problems: list[str] = []
    for node in expected:
        item = by_name.get(node)
        not_ready = node_not_ready(node, item)
        if item is None or not_ready:
            problems.append(not_ready)
            continue
        conditions = _conditions(item)
        for kind in NODE_PRESSURE_CONDITIONS:
            condition = conditions.get(kind, {})
            if condition.get("status") == "True":
                problems.append(f"{node} {kind} ({condition.get('message', '')})")
    extra = sorted(set(by_name) - set(expected))
    note = f"; also registered, not in the inventory: {', '.join(extra)}" if extra else ""
    if problems:
        return Check(host, name, "fail", "; ".join(problems) + note)
    return Check(host, name, "pass", f"Ready: {', '.join(expected)}{note}")
