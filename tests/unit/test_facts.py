"""The cluster facts have one source, `k8s_provision.facts`: their values for the reference
cluster, the `k8s_provision.cluster.context` lookup handing them to the roles, and no copy of
them in the roles' files or in the Python that checks the hosts."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s_provision import facts, inventory, preflight
from k8s_provision.inventory import reader
from k8s_provision.inventory.source import check_source
from k8s_provision.model import Cluster, variable_spec

REPO = Path(__file__).resolve().parent.parent.parent
REFERENCE = REPO / "inventories" / "reference.ini"
COLLECTION = REPO / "ansible_collections" / "k8s_provision" / "cluster"
ROLES = COLLECTION / "roles"
ROLE_FILES = sorted(ROLES.glob("**/*.yml"))
# The role files that only set variables: the engineer editing tasks and handlers owns the rest.
VARIABLE_FILES = [p for p in ROLE_FILES if p.parent.name in ("defaults", "vars")]
# Role variables where a unit's name means something else.
OTHER_MEANINGS = {
    "prerequisites_in_container": "'docker' is a kind of container the host may run in",
}


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return inventory.load(REFERENCE)


def test_reference_cluster_facts(cluster: Cluster) -> None:
    master, node1 = cluster.host("master"), cluster.host("node1")
    assert facts.host_units(master) == (
        "etcd",
        "flanneld",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    )
    assert facts.host_units(node1) == ("etcd", "flanneld", "docker", "kubelet", "kube-proxy")
    assert facts.open_ports(cluster, master) == ["2379/tcp", "2380/tcp", "8080/tcp", "8285/udp"]
    assert facts.open_ports(cluster, node1) == ["2379/tcp", "2380/tcp", "10250/tcp", "8285/udp"]
    assert facts.etcd_client_url(cluster, node1) == "http://192.168.10.2:2379"
    assert facts.etcd_peer_url(cluster, node1) == "http://192.168.10.2:2380"
    assert facts.api_url(cluster) == "http://192.168.10.1:8080"
    assert facts.role_units()["node"] == ["kubelet", "kube-proxy"]
    assert facts.role_units()["runtime"] == ["docker"]
    assert facts.all_units()[0] == "etcd"  # start order: reset stops in the reverse


def test_vxlan_and_host_gw_ports(cluster: Cluster) -> None:
    node1 = cluster.host("node1")
    for backend, port in (("vxlan", ["8472/udp"]), ("host-gw", [])):
        other = replace(cluster, settings=replace(cluster.settings, flannel_backend=backend))
        assert facts.open_ports(other, node1) == ["2379/tcp", "2380/tcp", "10250/tcp", *port]


def test_api_local_url_follows_the_bind_address(cluster: Cluster) -> None:
    assert facts.api_local_url(cluster) == "http://127.0.0.1:8080"  # binds 0.0.0.0
    bound = replace(cluster, settings=replace(cluster.settings, kube_api_address="192.168.10.1"))
    assert facts.api_local_url(bound) == "http://192.168.10.1:8080"


def test_python_minimum_per_ansible_core() -> None:
    assert facts.min_target_python("2.16.14") == (2, 7)
    assert facts.min_target_python("2.17.0") == (3, 7)
    assert facts.min_target_python("2.19.1") == (3, 8)


def test_the_lookup_hands_the_facts_to_the_roles(cluster: Cluster) -> None:
    spec = importlib.util.spec_from_file_location(
        "k8s_provision_context", COLLECTION / "plugins" / "lookup" / "context.py"
    )
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    groups, hostvars = reader.read(REFERENCE, reader.VaultOptions(), check_source(REFERENCE))
    variables = {"groups": groups, "hostvars": hostvars, "inventory_hostname": "node1"}
    (context,) = plugin.LookupModule().run([], variables=variables)
    assert context["facts"] == facts.context(cluster, cluster.host("node1"))
    assert context["facts"]["open_ports"] == ["2379/tcp", "2380/tcp", "10250/tcp", "8285/udp"]
    assert context["facts"]["python_interpreters"] == list(facts.PYTHON_INTERPRETERS)


PACKAGE = REPO / "k8s_provision"
# The Python that renders, checks and changes hosts.
PYTHON_SOURCES = sorted(
    [
        PACKAGE / name
        for name in ("preflight.py", "runbook.py", "render.py", "lifecycle.py", "membership.py")
    ]
    + [p for sub in ("verify", "diagnose", "probes") for p in (PACKAGE / sub).glob("*.py")]
)


@pytest.mark.parametrize("path", PYTHON_SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_python_copies_no_interpreter_or_url(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"[\"'](/usr/bin/|/usr/libexec/platform-)?python[23.]", text), path
    assert not re.search(r"http://\{", text), f"{path}: builds a URL; use k8s_provision.facts"


def test_preflight_probes_the_facts_interpreters() -> None:
    assert preflight.python_too_old((3, 6), "2.19.1") is True  # reads facts.min_target_python


def _fact_ports() -> set[str]:
    spec = variable_spec().cluster
    ports = {str(value) for name, value in spec.items() if name.endswith("_port")}
    return ports | {p.partition("/")[0] for p in facts.FLANNEL_BACKEND_PORTS.values()}


@pytest.mark.parametrize("path", ROLE_FILES, ids=lambda p: str(p.relative_to(ROLES)))
def test_roles_copy_no_port_or_url(path: Path) -> None:
    """A port number or a hand-built URL in a role is a copy that drifts from the model."""
    text = path.read_text(encoding="utf-8")
    ports = sorted(p for p in _fact_ports() if re.search(rf"(?<![\d.]){p}(?![\d.])", text))
    assert not ports, f"{path}: hard-codes port {', '.join(ports)}; read k8s.facts / k8s.*_port"
    assert "http://" not in text, f"{path}: builds a URL; read k8s.facts (etcd_local_url, ...)"


def _strings(node: Any, key: str = "") -> list[tuple[str, str]]:
    """(variable, string) for every string value under `node`, with the role variable (the
    top-level key) it belongs to."""
    if isinstance(node, dict):
        return [pair for k, v in node.items() for pair in _strings(v, key or str(k))]
    if isinstance(node, list):
        return [pair for item in node for pair in _strings(item, key)]
    return [(key, node)] if isinstance(node, str) else []


@pytest.mark.parametrize("path", VARIABLE_FILES, ids=lambda p: str(p.relative_to(ROLES)))
def test_role_variables_copy_no_unit_or_interpreter(path: Path) -> None:
    """Unit names (as values or quoted in an expression) and interpreter lists come from
    k8s.facts. Package names may equal a unit's (the etcd package): lists of packages are
    exempt."""
    units = "|".join(re.escape(u) for u in facts.all_units())
    quoted = re.compile(rf"""['"]({units})(\.service)?['"]|\b({units})\.service(?![\w.])""")
    found: list[str] = []
    for key, value in _strings(yaml.safe_load(path.read_text(encoding="utf-8")) or {}):
        if key.endswith("_packages") or key in OTHER_MEANINGS:
            continue
        if value.strip() in facts.all_units() or quoted.search(value):
            found.append(f"{key}: {value.strip()}")
        if value.strip() in facts.PYTHON_INTERPRETERS:
            found.append(f"{key}: {value.strip()}")
    assert not found, f"{path}: copies cluster facts: {found}"
