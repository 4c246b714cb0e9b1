#!/usr/bin/env python3
"""FAKE Kubernetes API server: a TEST DOUBLE for `k8s-provision verify`, never a cluster part.

The classic lab (the layout of CentOS 7's Kubernetes 1.5, without the 1.20 binaries the lab can
build) runs no API server, so the lab tests start this on its master to drive the real kubectl
through `verify` in states a real cluster reaches only slowly or not at will (a node Unknown, a
component unhealthy); the real 1.20 API server is tested in tests/lab/test_kubernetes.py. It
answers the read-only endpoints kubectl uses -- /healthz, /version, /api, /apis, /api/v1 and the
group resource lists, /api/v1/nodes, /api/v1/componentstatuses -- with bodies shaped like those
of a Kubernetes 1.5.2 apiserver on its insecure port (1.5 discovery: resources carry name,
namespaced and kind only; list items carry no kind/apiVersion; 404s are v1 Status objects). It
serves nothing else and changes nothing: every other path or method gets a 404 or 405 Status.

What the cluster looks like comes from a scenario file (JSON), re-read on every request so a
test can switch scenarios without restarting the server:

    {"nodes": [{"name": "node1", "address": "192.168.10.2", "ready": "True"},
               {"name": "node2", "address": "192.168.10.3", "ready": "Unknown"}],
     "components": [{"name": "scheduler", "healthy": true},
                    {"name": "controller-manager", "healthy": false,
                     "message": "Get http://127.0.0.1:10252/healthz: ... connection refused"}]}

`ready` is "True", "False" (the kubelet reports a problem) or "Unknown" (the kubelet stopped
posting status); `reason`/`message` override the defaults a 1.5 kubelet or node controller
writes. Components default to healthy with message "ok" (etcd-N: {"health": "true"}).

Standard library only, so it runs with the lab host's python3:

    python3 fake_apiserver.py --port 8080 --scenario /root/fake-scenario.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = {
    "major": "1",
    "minor": "5",
    "gitVersion": "v1.5.2",
    "gitCommit": "08e099554f3c31f6e6f07b448ab3ed78d0520507",
    "gitTreeState": "clean",
    "buildDate": "2017-01-12T04:57:25Z",
    "goVersion": "go1.7.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# (group/version, [(resource, namespaced, kind)]) as a 1.5 apiserver with its default groups
# enabled lists them.
CORE_RESOURCES = [
    ("bindings", True, "Binding"),
    ("componentstatuses", False, "ComponentStatus"),
    ("configmaps", True, "ConfigMap"),
    ("endpoints", True, "Endpoints"),
    ("events", True, "Event"),
    ("limitranges", True, "LimitRange"),
    ("namespaces", False, "Namespace"),
    ("namespaces/finalize", False, "Namespace"),
    ("namespaces/status", False, "Namespace"),
    ("nodes", False, "Node"),
    ("nodes/proxy", False, "Node"),
    ("nodes/status", False, "Node"),
    ("persistentvolumeclaims", True, "PersistentVolumeClaim"),
    ("persistentvolumeclaims/status", True, "PersistentVolumeClaim"),
    ("persistentvolumes", False, "PersistentVolume"),
    ("persistentvolumes/status", False, "PersistentVolume"),
    ("pods", True, "Pod"),
    ("pods/attach", True, "Pod"),
    ("pods/binding", True, "Binding"),
    ("pods/eviction", True, "Eviction"),
    ("pods/exec", True, "Pod"),
    ("pods/log", True, "Pod"),
    ("pods/portforward", True, "Pod"),
    ("pods/proxy", True, "Pod"),
    ("pods/status", True, "Pod"),
    ("podtemplates", True, "PodTemplate"),
    ("replicationcontrollers", True, "ReplicationController"),
    ("replicationcontrollers/scale", True, "Scale"),
    ("replicationcontrollers/status", True, "ReplicationController"),
    ("resourcequotas", True, "ResourceQuota"),
    ("resourcequotas/status", True, "ResourceQuota"),
    ("secrets", True, "Secret"),
    ("serviceaccounts", True, "ServiceAccount"),
    ("services", True, "Service"),
    ("services/proxy", True, "Service"),
    ("services/status", True, "Service"),
]
GROUP_RESOURCES: dict[str, list[tuple[str, bool, str]]] = {
    "apps/v1beta1": [
        ("statefulsets", True, "StatefulSet"),
        ("statefulsets/status", True, "StatefulSet"),
    ],
    "authentication.k8s.io/v1beta1": [("tokenreviews", False, "TokenReview")],
    "authorization.k8s.io/v1beta1": [
        ("localsubjectaccessreviews", True, "LocalSubjectAccessReview"),
        ("selfsubjectaccessreviews", False, "SelfSubjectAccessReview"),
        ("subjectaccessreviews", False, "SubjectAccessReview"),
    ],
    "autoscaling/v1": [
        ("horizontalpodautoscalers", True, "HorizontalPodAutoscaler"),
        ("horizontalpodautoscalers/status", True, "HorizontalPodAutoscaler"),
    ],
    "batch/v1": [("jobs", True, "Job"), ("jobs/status", True, "Job")],
    "certificates.k8s.io/v1alpha1": [
        ("certificatesigningrequests", False, "CertificateSigningRequest"),
        ("certificatesigningrequests/approval", False, "CertificateSigningRequest"),
        ("certificatesigningrequests/status", False, "CertificateSigningRequest"),
    ],
    "extensions/v1beta1": [
        ("daemonsets", True, "DaemonSet"),
        ("daemonsets/status", True, "DaemonSet"),
        ("deployments", True, "Deployment"),
        ("deployments/rollback", True, "DeploymentRollback"),
        ("deployments/scale", True, "Scale"),
        ("deployments/status", True, "Deployment"),
        ("horizontalpodautoscalers", True, "HorizontalPodAutoscaler"),
        ("horizontalpodautoscalers/status", True, "HorizontalPodAutoscaler"),
        ("ingresses", True, "Ingress"),
        ("ingresses/status", True, "Ingress"),
        ("jobs", True, "Job"),
        ("jobs/status", True, "Job"),
        ("networkpolicies", True, "NetworkPolicy"),
        ("replicasets", True, "ReplicaSet"),
        ("replicasets/scale", True, "Scale"),
        ("replicasets/status", True, "ReplicaSet"),
        ("replicationcontrollers", True, "ReplicationControllerDummy"),
        ("replicationcontrollers/scale", True, "Scale"),
        ("thirdpartyresources", False, "ThirdPartyResource"),
    ],
    "policy/v1beta1": [
        ("poddisruptionbudgets", True, "PodDisruptionBudget"),
        ("poddisruptionbudgets/status", True, "PodDisruptionBudget"),
    ],
    "rbac.authorization.k8s.io/v1alpha1": [
        ("clusterrolebindings", False, "ClusterRoleBinding"),
        ("clusterroles", False, "ClusterRole"),
        ("rolebindings", True, "RoleBinding"),
        ("roles", True, "Role"),
    ],
    "storage.k8s.io/v1beta1": [("storageclasses", False, "StorageClass")],
}

# What a 1.5 kubelet (True/False) or the node controller (Unknown) writes into conditions.
READY_DEFAULTS = {
    "True": ("KubeletReady", "kubelet is posting ready status"),
    "False": ("KubeletNotReady", "container runtime is down"),
    "Unknown": ("NodeStatusUnknown", "Kubelet stopped posting node status."),
}
PRESSURE_DEFAULTS = {
    "OutOfDisk": ("KubeletHasSufficientDisk", "kubelet has sufficient disk space available"),
    "MemoryPressure": ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    "DiskPressure": ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
}
CREATED = "2017-01-20T09:00:00Z"
HEARTBEAT = "2017-01-20T10:00:00Z"


def ready_scenario(nodes: list[tuple[str, str]], etcd_members: int) -> dict[str, Any]:
    """The scenario of a healthy cluster: each (node name, address) Ready, the scheduler, the
    controller-manager and etcd-0 .. etcd-<etcd_members - 1> healthy."""
    components = ["controller-manager", "scheduler", *(f"etcd-{i}" for i in range(etcd_members))]
    return {
        "nodes": [{"name": name, "address": address} for name, address in nodes],
        "components": [{"name": name} for name in components],
    }


def _uid(name: str) -> str:
    return str(uuid.UUID(hashlib.md5(name.encode()).hexdigest()))  # noqa: S324 -- an id


def _resource_version(scenario: dict[str, Any]) -> str:
    # Changes with the scenario, as a real resourceVersion changes with the stored objects.
    digest = hashlib.sha256(json.dumps(scenario, sort_keys=True).encode()).hexdigest()
    return str(int(digest[:6], 16))


def _resource_list(group_version: str, resources: list[tuple[str, bool, str]]) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "groupVersion": group_version,
        "resources": [{"name": n, "namespaced": ns, "kind": k} for n, ns, k in resources],
    }


def _group_list(server_address: str) -> dict[str, Any]:
    groups = []
    for group_version in GROUP_RESOURCES:
        name, version = group_version.split("/")
        entry = {"groupVersion": group_version, "version": version}
        groups.append(
            {
                "name": name,
                "versions": [entry],
                "preferredVersion": entry,
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
                ],
            }
        )
    return {"kind": "APIGroupList", "groups": groups}


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "lastHeartbeatTime": HEARTBEAT,
        "lastTransitionTime": CREATED,
        "reason": reason,
        "message": message,
    }


def _node(spec: dict[str, Any]) -> dict[str, Any]:
    name = spec["name"]
    ready = str(spec.get("ready", "True"))
    reason, message = READY_DEFAULTS[ready]
    reason = spec.get("reason", reason)
    message = spec.get("message", message)
    conditions = []
    for kind, (ok_reason, ok_message) in PRESSURE_DEFAULTS.items():
        if ready == "Unknown":
            # The node controller marks every condition Unknown when the kubelet goes silent.
            conditions.append(_condition(kind, "Unknown", reason, message))
        else:
            conditions.append(_condition(kind, "False", ok_reason, ok_message))
    conditions.append(_condition("Ready", ready, reason, message))
    address = spec.get("address", "")
    capacity = {"alpha.kubernetes.io/nvidia-gpu": "0", "cpu": "2", "memory": "3881588Ki"}
    capacity["pods"] = "110"
    return {
        "metadata": {
            "name": name,
            "selfLink": f"/api/v1/nodes/{name}",
            "uid": _uid(name),
            "resourceVersion": str(1000 + len(name)),
            "creationTimestamp": CREATED,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
            },
            "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {"externalID": name},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": conditions,
            "addresses": [
                {"type": "LegacyHostIP", "address": address},
                {"type": "InternalIP", "address": address},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": _uid(name + "-machine").replace("-", ""),
                "systemUUID": _uid(name + "-system").upper(),
                "bootID": _uid(name + "-boot"),
                "kernelVersion": "3.10.0-1160.el7.x86_64",
                "osImage": "CentOS Linux 7 (Core)",
                "containerRuntimeVersion": "docker://1.12.6",
                "kubeletVersion": "v1.5.2",
                "kubeProxyVersion": "v1.5.2",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": [],
        },
    }


def _component(spec: dict[str, Any]) -> dict[str, Any]:
    name = spec["name"]
    healthy = bool(spec.get("healthy", True))
    default = '{"health": "true"}' if name.startswith("etcd-") else "ok"
    condition = {"type": "Healthy", "status": "True" if healthy else "False"}
    # message and error are omitempty in 1.5; a failed probe puts its error text in message.
    message = spec.get("message", default if healthy else "")
    if message:
        condition["message"] = message
    if spec.get("error"):
        condition["error"] = spec["error"]
    return {
        "metadata": {
            "name": name,
            "selfLink": f"/api/v1/componentstatuses/{name}",
            "creationTimestamp": None,
        },
        "conditions": [condition],
    }


def _status(code: int, reason: str, message: str, details: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details:
        body["details"] = details
    body["code"] = code
    return body


def _not_found(kind: str = "", name: str = "") -> tuple[int, dict[str, Any]]:
    if kind and name:
        message = f'{kind} "{name}" not found'
        return 404, _status(404, "NotFound", message, {"name": name, "kind": kind})
    return 404, _status(404, "NotFound", "the server could not find the requested resource", {})


def respond(path: str, scenario: dict[str, Any], server_address: str) -> tuple[int, Any]:
    """(HTTP status, body) for a GET of `path`; a str body is sent as text/plain."""
    path = path.split("?", 1)[0].rstrip("/") or "/"
    version = _resource_version(scenario)
    nodes = [_node(n) for n in scenario.get("nodes", [])]
    components = [_component(c) for c in scenario.get("components", [])]
    if path == "/healthz":
        return 200, str(scenario.get("healthz", "ok"))
    if path == "/version":
        return 200, VERSION
    if path == "/api":
        cidrs = [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
        return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": cidrs}
    if path == "/apis":
        return 200, _group_list(server_address)
    if path == "/api/v1":
        return 200, _resource_list("v1", CORE_RESOURCES)
    if path.startswith("/apis/"):
        group_version = path[len("/apis/") :]
        if group_version in GROUP_RESOURCES:
            return 200, _resource_list(group_version, GROUP_RESOURCES[group_version])
        return _not_found()
    if path == "/api/v1/nodes":
        meta = {"selfLink": "/api/v1/nodes", "resourceVersion": version}
        return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": meta, "items": nodes}
    if path == "/api/v1/componentstatuses":
        meta = {"selfLink": "/api/v1/componentstatuses"}
        return 200, {
            "kind": "ComponentStatusList",
            "apiVersion": "v1",
            "metadata": meta,
            "items": components,
        }
    match = re.fullmatch(r"/api/v1/(nodes|componentstatuses)/([^/]+)", path)
    if match:
        kind, name = match.groups()
        items = nodes if kind == "nodes" else components
        for item in items:
            if item["metadata"]["name"] == name:
                single = "Node" if kind == "nodes" else "ComponentStatus"
                return 200, {"kind": single, "apiVersion": "v1", **item}
        return _not_found(kind, name)
    return _not_found()


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-apiserver (test double)"
    scenario_path = ""
    server_address_text = ""

    def do_GET(self) -> None:
        try:
            with open(self.scenario_path, encoding="utf-8") as handle:
                scenario = json.load(handle)
        except (OSError, ValueError) as err:
            self._send(500, _status(500, "InternalError", f"scenario: {err}", {}))
            return
        code, body = respond(self.path, scenario, self.server_address_text)
        self._send(code, body)

    def _refuse(self) -> None:
        message = "the fake apiserver (a test double) is read-only"
        self._send(405, _status(405, "MethodNotAllowed", message, {}))

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

    def _send(self, code: int, body: Any) -> None:
        if isinstance(body, str):
            data, kind = body.encode(), "text/plain; charset=utf-8"
        else:
            data, kind = json.dumps(body).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("fake-apiserver: " + format % args + "\n")


def kubectl_get_json(
    resources: list[str], scenario: dict[str, Any], server_address: str
) -> dict[str, Any]:
    """What kubectl prints for `kubectl get RESOURCE,RESOURCE -o json` against this server: it
    GETs each list and prints one `List` whose items carry their kind and apiVersion (the
    server's list items carry neither), as kubectl 1.20 does against a real API server."""
    items = []
    for resource in resources:
        code, body = respond(f"/api/v1/{resource}", scenario, server_address)
        assert code == 200, body
        kind = body["kind"].removesuffix("List")
        items += [{"apiVersion": "v1", "kind": kind, **item} for item in body["items"]]
    meta = {"resourceVersion": "", "selfLink": ""}
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": meta}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="FAKE Kubernetes 1.5 API server (test double)")
    parser.add_argument("--address", default="0.0.0.0")  # noqa: S104 -- like the classic layout
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--scenario", required=True, help="JSON file describing the cluster")
    parser.add_argument(
        "--advertise", default="", help="serverAddress in discovery (default: ADDRESS:6443)"
    )
    args = parser.parse_args(argv)
    Handler.scenario_path = args.scenario
    Handler.server_address_text = args.advertise or f"{args.address}:6443"
    server = ThreadingHTTPServer((args.address, args.port), Handler)
    sys.stderr.write(f"fake-apiserver (test double) on {args.address}:{args.port}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
