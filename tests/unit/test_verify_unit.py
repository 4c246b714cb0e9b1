"""verify without hosts: the probe framing run by a real local sh, parsing of real etcdctl /
curl / ss / systemctl / ip output, the checks built from the fake API server's 1.5-shaped JSON,
the rules of `evaluate`, the report JSON shape and the CLI's exit codes."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ansible_collections.k8s_provision.cluster.plugins.filter import (
    node_not_ready as node_not_ready_filter,
)
from k8s_provision import facts as cluster_facts
from k8s_provision import inventory, service_state, verify
from k8s_provision.cli import cli
from k8s_provision.model import Cluster
from k8s_provision.probes import (
    HostFacts,
    Output,
    systemd,
)
from k8s_provision.report import Check, Report, plain_table, summary
from k8s_provision.verify import api, units
from k8s_provision.verify import flannel as verify_flannel
from k8s_provision.verify import run as verify_run
from tests.support import fake_apiserver

# Real outputs seen on the lab (etcd 3.4, curl 7.88, iproute2 6.1, systemd 252).
HEALTHY = "http://{ip}:2379 is healthy: successfully committed proposal: took = 2.6ms\n"
UNHEALTHY = (
    '{"level":"warn","ts":"2026-11-27T22:51:26.109Z","caller":"clientv3/retry_interceptor.go:62",'
    '"msg":"retrying of unary invoker failed","attempt":0,"error":"rpc error: code = '
    'DeadlineExceeded desc = latest balancer error: all SubConns are in TransientFailure"}\n'
    "http://{ip}:2379 is unhealthy: failed to commit proposal: context deadline exceeded\n"
    "Error: unhealthy cluster\n"
)
REFUSED = "curl: (7) Failed to connect to {ip} port 2379 after 0 ms: Couldn't connect to server\n"
SS_LAB = """State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess
LISTEN 0      4096      127.0.0.1:2379 0.0.0.0:*
LISTEN 0      128         0.0.0.0:22   0.0.0.0:*
LISTEN 0      4096   {ip}:2380 0.0.0.0:*
LISTEN 0      4096   {ip}:2379 0.0.0.0:*
LISTEN 0      5           0.0.0.0:8080 0.0.0.0:*
LISTEN 0      128            [::]:22      [::]:*
"""


@pytest.fixture(scope="module")
def cluster(repo_root: Path) -> Cluster:
    return inventory.load(repo_root / "inventories" / "reference.ini")


@pytest.fixture(scope="module")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent.parent


def units_text(states: dict[str, str]) -> str:
    """`systemctl show` output; a state of "not-found" means the unit is not installed."""
    blocks = []
    for unit, state in states.items():
        if state == "not-found":
            load, active, sub, enabled = "not-found", "inactive", "dead", ""
        else:
            load, active, sub, enabled = "loaded", state, "running", "enabled"
            if state != "active":
                sub = "dead" if state == "inactive" else "failed"
        blocks.append(
            f"Id={unit}.service\nLoadState={load}\nActiveState={active}\nSubState={sub}\n"
            f"UnitFileState={enabled}\n"
        )
    return "\n".join(blocks)


def http(body: str, code: int = 200) -> Output:
    return Output(0, f"{body}\n{code}")


def v2_get(key: str, value: str) -> str:
    return json.dumps({"action": "get", "node": {"key": key, "value": value}})


def leases_body(leases: dict[str, str]) -> str:
    nodes = [
        {
            "key": f"/atomic.io/network/subnets/{subnet.replace('/', '-')}",
            "value": json.dumps({"PublicIP": ip}),
            "ttl": 86000,
        }
        for subnet, ip in leases.items()
    ]
    return json.dumps(
        {
            "action": "get",
            "node": {"key": "/atomic.io/network/subnets", "dir": True, "nodes": nodes},
        }
    )


def kubectl_get_json(scenario: dict[str, Any]) -> str:
    resources = ["componentstatuses", "nodes"]
    return json.dumps(fake_apiserver.kubectl_get_json(resources, scenario, "192.168.10.1:6443"))


def api_json(path: str, scenario: dict[str, Any]) -> str:
    code, body = fake_apiserver.respond(path, scenario, "192.168.10.1:6443")
    assert code == 200
    return json.dumps(body)


LEASES = {
    "172.17.10.0/24": "192.168.10.1",
    "172.17.20.0/24": "192.168.10.2",
    "172.17.30.0/24": "192.168.10.3",
}
ALL_READY = {
    "nodes": [
        {"name": "node1", "address": "192.168.10.2"},
        {"name": "node2", "address": "192.168.10.3"},
    ],
    "components": [
        {"name": n} for n in ("controller-manager", "scheduler", "etcd-0", "etcd-1", "etcd-2")
    ],
}


def healthy_facts(cluster: Cluster, scenario: dict[str, Any] = ALL_READY) -> dict[str, HostFacts]:
    """Outputs of a converged reference cluster, every component installed and healthy."""
    members = {
        "header": {"cluster_id": 42},
        "members": [{"name": n, "ID": i} for i, n in enumerate(cluster.etcd)],
    }
    facts = {}
    for host in cluster.hosts:
        outputs = {
            "units": Output(0, units_text(dict.fromkeys(cluster_facts.host_units(host), "active"))),
            "listen": Output(0, SS_LAB.format(ip=host.ip)),
            "etcd-health": Output(0, "", HEALTHY.format(ip=host.ip)),
            "etcd-reach": Output(0, '{"health":"true"}'),
            "etcd-members": Output(0, json.dumps(members)),
            "flannel-config": http(
                v2_get(
                    "/atomic.io/network/config",
                    '{"Network":"172.17.0.0/16","Backend":{"Type":"udp"}}',
                )
            ),
            "flannel-subnets": http(leases_body(LEASES)),
            "docker0": Output(
                0,
                f"3: docker0    inet {next(s for s, ip in LEASES.items() if ip == host.ip)[:-4]}"
                "1/24 scope global docker0",
            ),
            "healthz": http("ok"),
            "kubectl-get": Output(0, kubectl_get_json(scenario)),
            "config-state": Output(
                0,
                "".join(
                    f"config-state {unit} {'a' * 64} {'a' * 64} active\n"
                    for unit in service_state.host_unit_paths(cluster, host)
                ),
            ),
        }
        wanted = {p.name for p in verify.probes_for(cluster, host)}
        facts[host.name] = HostFacts(host.name, {k: v for k, v in outputs.items() if k in wanted})
    return facts


def with_output(facts: dict[str, HostFacts], host: str, **outputs: Output) -> dict[str, HostFacts]:
    changed = dict(facts)
    renamed = {name.replace("_", "-"): output for name, output in outputs.items()}
    changed[host] = HostFacts(host, {**facts[host].outputs, **renamed})
    return changed


def row(report: Report, host: str, check: str) -> Check:
    matches = [c for c in report.checks if c.host == host and c.check == check]
    assert len(matches) == 1, f"{host} {check}: {matches}"
    return matches[0]


# ---------------------------------------------------------------------------------------------
# Roles and probes


def test_units_follow_roles_in_start_order(cluster: Cluster) -> None:
    assert cluster_facts.host_units(cluster.host("master")) == (
        "etcd",
        "flanneld",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    )
    assert cluster_facts.host_units(cluster.host("node1")) == (
        "etcd",
        "flanneld",
        "docker",
        "kubelet",
        "kube-proxy",
    )


def test_probes_use_each_hosts_own_endpoint(cluster: Cluster) -> None:
    node1 = {p.name: p.command for p in verify.probes_for(cluster, cluster.host("node1"))}
    assert "--endpoints=http://192.168.10.2:2379" in node1["etcd-health"]
    assert "http://192.168.10.2:2379/v2/keys/atomic.io/network/config" in node1["flannel-config"]
    assert "kubectl-get" not in node1
    master = {p.name: p.command for p in verify.probes_for(cluster, cluster.host("master"))}
    # 1.5 discovery has no short names: `get cs` would fail against a 1.5 apiserver.
    assert "get componentstatuses,nodes -o json" in master["kubectl-get"]
    assert "-s http://192.168.10.1:8080" in master["kubectl-get"]
    assert "docker0" not in master


# ---------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    ("load", "active", "sub", "enabled", "status", "detail"),
    [
        ("loaded", "active", "running", "enabled", "pass", "active (running)"),
        ("loaded", "active", "running", "disabled", "pass", "not enabled at boot"),
        ("not-found", "inactive", "dead", "", "skip", "etcd is not installed on this host"),
        ("loaded", "inactive", "dead", "enabled", "fail", "journalctl -u etcd"),
        ("loaded", "activating", "auto-restart", "enabled", "fail", "activating (auto-restart)"),
        ("masked", "inactive", "dead", "masked", "fail", "systemctl unmask etcd"),
    ],
)
def test_unit_check(
    cluster: Cluster, load: str, active: str, sub: str, enabled: str, status: str, detail: str
) -> None:
    state = systemd.UnitState(load, active, sub, enabled)
    check = units.unit_check(cluster.host("node1"), "etcd", state)
    assert (check.check, check.status) == ("unit:etcd", status)
    assert detail in check.detail


# ---------------------------------------------------------------------------------------------
# Checks from 1.5-shaped API objects (served by the test double's own code)

NODE_CASES: list[dict[str, Any]] = [
    {"name": "all Ready", "nodes": ALL_READY["nodes"], "status": "pass", "expect": ["node1"]},
    {
        "name": "NotReady kubelet silent",
        "nodes": [ALL_READY["nodes"][0], {"name": "node2", "ready": "Unknown"}],
        "status": "fail",
        "expect": ["node2 NotReady", "Ready=Unknown", "Kubelet stopped posting node status."],
    },
    {
        "name": "NotReady runtime down",
        "nodes": [ALL_READY["nodes"][0], {"name": "node2", "ready": "False"}],
        "status": "fail",
        "expect": ["node2 NotReady", "KubeletNotReady: container runtime is down"],
    },
    {
        "name": "missing node",
        "nodes": [ALL_READY["nodes"][0]],
        "status": "fail",
        "expect": ["node2 is not registered"],
    },
    {
        "name": "extra node is mentioned, not failed",
        "nodes": [*ALL_READY["nodes"], {"name": "stale"}],
        "status": "pass",
        "expect": ["not in the inventory: stale"],
    },
]


@pytest.mark.parametrize("case", NODE_CASES, ids=[c["name"] for c in NODE_CASES])
def test_nodes_check(case: dict[str, Any]) -> None:
    data = json.loads(api_json("/api/v1/nodes", {"nodes": case["nodes"]}))
    check = api.nodes_check("master", data, ["node1", "node2"])
    assert check.status == case["status"], check.detail
    for text in case["expect"]:
        assert text in check.detail


def test_nodes_check_reports_pressure() -> None:
    data = json.loads(api_json("/api/v1/nodes", {"nodes": ALL_READY["nodes"]}))
    data["items"][1]["status"]["conditions"][0].update(status="True", message="out of disk space")
    check = api.nodes_check("master", data, ["node1", "node2"])
    assert check.status == "fail"
    assert "node2 OutOfDisk (out of disk space)" in check.detail


def uri_result(path: str, scenario: dict[str, Any]) -> dict[str, Any]:
    """What ansible.builtin.uri registers for a GET of `path` from the API test double."""
    code, body = fake_apiserver.respond(path, scenario, "192.168.10.1:6443")
    return {"status": code, "json": body, "msg": f"OK ({len(json.dumps(body))} bytes)"}


NOT_READY_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("Ready", uri_result("/api/v1/nodes/node1", ALL_READY), ""),
    (
        "NotReady",
        uri_result("/api/v1/nodes/node1", {"nodes": [{"name": "node1", "ready": "False"}]}),
        "node1 NotReady (Ready=False, KubeletNotReady: container runtime is down)",
    ),
    (
        "not registered",
        uri_result("/api/v1/nodes/node1", {"nodes": []}),
        "node1 is not registered (its kubelet never reached the API;",
    ),
    (
        "API down",
        {
            "status": -1,
            "msg": "Status code was -1 and not [200]: Request failed: <urlopen error [Errno 111]"
            " Connection refused>",
        },
        "node1: the API server gave no answer (Status code was -1 and not [200]: Request failed:",
    ),
]


@pytest.mark.parametrize(
    ("result", "expect"),
    [case[1:] for case in NOT_READY_CASES],
    ids=[case[0] for case in NOT_READY_CASES],
)
def test_node_not_ready_filter(result: dict[str, Any], expect: str) -> None:
    """The roles' wait for a node fails with the reason verify would give."""
    reason = node_not_ready_filter.node_not_ready(result, "node1")
    assert reason.startswith(expect) if expect else reason == ""


def test_componentstatus_check() -> None:
    healthy = json.loads(api_json("/api/v1/componentstatuses", ALL_READY))
    check = api.componentstatus_check("master", healthy, 3)
    assert check.status == "pass"
    assert "etcd-2" in check.detail
    refused = "Get http://127.0.0.1:10252/healthz: dial tcp 127.0.0.1:10252: connection refused"
    scenario = {
        "components": [
            {"name": "controller-manager", "healthy": False, "message": refused},
            {"name": "scheduler"},
            {"name": "etcd-0"},
        ]
    }
    check = api.componentstatus_check(
        "master", json.loads(api_json("/api/v1/componentstatuses", scenario)), 3
    )
    assert check.status == "fail"
    assert f"controller-manager Unhealthy ({refused})" in check.detail
    assert "not reported: etcd-1, etcd-2" in check.detail


@pytest.mark.parametrize(
    ("code", "body", "status", "expect"),
    [
        (200, v2_get("k", '{"Network":"172.17.0.0/16"}'), "pass", "Backend udp"),
        (200, v2_get("k", '{"Network":"10.1.0.0/16"}'), "fail", "flannel_network is 172.17"),
        (200, v2_get("k", '{"Network":"172.17.0.0/16","Backend":{"Type":"vxlan"}}'), "fail",
         "flannel_backend is udp"),
        (200, v2_get("k", "not json"), "fail", "no valid flannel config"),
        (404, '{"errorCode":100,"message":"Key not found","cause":"/x","index":9}', "fail",
         '"Key not found"'),
        (404, "404 page not found", "fail", "ETCD_ENABLE_V2=true"),
    ],
)  # fmt: skip
def test_network_key_check(code: int, body: str, status: str, expect: str) -> None:
    check = verify_flannel.network_key_check(
        "master", "/atomic.io/network/config", "http://x:2379", code, body, "172.17.0.0/16", "udp"
    )
    assert check.status == status
    assert expect in check.detail


@pytest.mark.parametrize(
    ("line", "status", "expect"),
    [
        ("inet 172.17.20.1/24 brd 172.17.20.255", "pass", "lease 172.17.20.0/24"),
        # docker's default bridge: started before flanneld wrote --bip
        ("inet 172.17.0.1/16 brd 172.17.255.255", "fail", "docker started before flanneld"),
        ("inet 172.17.30.1/24 brd 172.17.30.255", "fail", "lease is 172.17.20.0/24"),
        ("inet 10.9.0.1/24 brd 10.9.0.255", "fail", "not inside a lease"),
    ],
)
def test_docker0_check(cluster: Cluster, line: str, status: str, expect: str) -> None:
    output = Output(0, f"3: docker0    {line} scope global docker0")
    check = verify_flannel.docker0_check(cluster.host("node1"), output, "172.17.0.0/16", LEASES)
    assert check.status == status
    assert expect in check.detail


# ---------------------------------------------------------------------------------------------
# evaluate: the rules


def test_healthy_cluster_passes_everything_but_security(cluster: Cluster) -> None:
    report = verify.evaluate(cluster, healthy_facts(cluster))
    assert report.ok
    assert {c.status for c in report.checks} == {"pass", "warn"}
    assert {c.check for c in report.checks if c.status == "warn"} == {
        "security:insecure-port",
        "security:etcd-plaintext",
    }
    assert (
        "anyone who reaches 192.168.10.1:8080"
        in row(report, "master", "security:insecure-port").detail
    )
    pairs = [(c.host, c.check) for c in report.checks]
    assert len(pairs) == len(set(pairs))
    assert row(report, "node1", "flannel:lease").detail == "lease 172.17.20.0/24 for 192.168.10.2"


def test_unreachable_host_gets_one_ssh_row(cluster: Cluster) -> None:
    facts = healthy_facts(cluster)
    facts["node2"] = HostFacts("node2", error="timed out connecting to 192.168.10.3:22")
    report = verify.evaluate(cluster, facts)
    assert [c for c in report.checks if c.host == "node2"] == [
        Check("node2", "ssh", "fail", "timed out connecting to 192.168.10.3:22")
    ]
    assert not report.ok
    assert row(report, "master", "etcd:health").status == "pass"


def test_flannel_key_read_from_next_member_when_first_is_unreachable(cluster: Cluster) -> None:
    facts = healthy_facts(cluster)
    facts["master"] = HostFacts("master", error="connection refused by 192.168.10.1:22")
    report = verify.evaluate(cluster, facts)
    assert row(report, "node1", "flannel:network-key").status == "pass"
    assert row(report, "node2", "flannel:lease").status == "pass"


def test_not_installed_is_skip_never_pass(cluster: Cluster) -> None:
    facts = healthy_facts(cluster)
    for host in cluster.hosts:
        # The Debian lab: etcd only, nothing answers on the API port.
        states = {
            u: "active" if u == "etcd" else "not-found" for u in cluster_facts.host_units(host)
        }
        facts = with_output(facts, host.name, units=Output(0, units_text(states)))
    facts = with_output(
        facts,
        "master",
        healthz=Output(7, "\n000", "curl: (7) Failed to connect to 192.168.10.1 port 8080"),
        listen=Output(0, SS_LAB.format(ip="192.168.10.1").replace("0.0.0.0:8080", "")),
    )
    report = verify.evaluate(cluster, facts)
    skipped = {(c.host, c.check): c.detail for c in report.checks if c.status == "skip"}
    assert skipped[("master", "unit:kube-apiserver")] == (
        "kube-apiserver is not installed on this host"
    )
    assert skipped[("node1", "docker0:subnet")] == "docker is not installed on this host"
    assert skipped[("node2", "flannel:lease")] == "flanneld is not installed on this host"
    for check in ("apiserver:healthz", "kubectl:cs", "kubectl:nodes"):
        assert "kube-apiserver is not installed" in skipped[("master", check)]
    assert report.ok


def test_api_down_fails_when_apiserver_is_installed(cluster: Cluster) -> None:
    refused = Output(7, "\n000", "curl: (7) Failed to connect to 192.168.10.1 port 8080\n")
    facts = with_output(healthy_facts(cluster), "master", healthz=refused)
    report = verify.evaluate(cluster, facts)
    healthz = row(report, "master", "apiserver:healthz")
    assert healthz.status == "fail"
    assert "journalctl -u kube-apiserver" in healthz.detail
    assert row(report, "master", "kubectl:nodes").status == "fail"


FORBIDDEN = (
    "Warning: v1 ComponentStatus is deprecated in v1.19+\n"
    'Error from server (Forbidden): nodes is forbidden: User "admin" cannot list resource'
    ' "nodes"\n'
)


@pytest.mark.parametrize(
    ("output", "expect"),
    [
        (Output(127, "", "sh: kubectl: not found\n"), "kubectl is not installed on this host"),
        (Output(124, ""), "kubectl get componentstatuses,nodes timed out after"),
        # kubectl prints what it could list and exits 1: any list may be missing a resource.
        (Output(1, '{"kind": "List", "items": []}', FORBIDDEN), "nodes is forbidden"),
        (Output(0, "<html>proxy error</html>"), "printed no JSON"),
        (Output(0, '{"kind": "Status"}'), "printed no List"),
    ],
)
def test_one_kubectl_failure_fails_both_api_checks_with_its_reason(
    cluster: Cluster, output: Output, expect: str
) -> None:
    report = verify.evaluate(
        cluster, with_output(healthy_facts(cluster), "master", kubectl_get=output)
    )
    for name in ("kubectl:cs", "kubectl:nodes"):
        check = row(report, "master", name)
        assert check.status == "fail"
        assert expect in check.detail
    assert row(report, "master", "apiserver:healthz").status == "pass"


def test_each_api_check_reads_only_its_own_kind_from_the_one_list(cluster: Cluster) -> None:
    """The cs check sees no nodes and the nodes check no components: a List holding only the
    components reports every node unregistered, and the components stay healthy."""
    listed = json.loads(kubectl_get_json(ALL_READY))
    listed["items"] = [i for i in listed["items"] if i["kind"] == "ComponentStatus"]
    report = verify.evaluate(
        cluster,
        with_output(healthy_facts(cluster), "master", kubectl_get=Output(0, json.dumps(listed))),
    )
    assert row(report, "master", "kubectl:cs").status == "pass"
    nodes = row(report, "master", "kubectl:nodes")
    assert nodes.status == "fail"
    assert "node1 is not registered" in nodes.detail
    assert "node2 is not registered" in nodes.detail


def test_stopped_etcd_member_fails_naming_host_and_etcd(cluster: Cluster) -> None:
    facts = with_output(
        healthy_facts(cluster),
        "node1",
        units=Output(0, units_text({"etcd": "inactive", "flanneld": "active", "docker": "active",
                                    "kubelet": "active", "kube-proxy": "active"})),
        etcd_health=Output(1, "", UNHEALTHY.replace("{ip}", "192.168.10.2")),
        etcd_reach=Output(7, "", REFUSED.format(ip="192.168.10.2")),
        etcd_members=Output(1, "", "Error: context deadline exceeded\n"),
    )  # fmt: skip
    report = verify.evaluate(cluster, facts)
    health = row(report, "node1", "etcd:health")
    assert health.status == "fail"
    assert "etcd member node1 at http://192.168.10.2:2379 is unhealthy" in health.detail
    assert health.detail == (
        "etcd member node1 at http://192.168.10.2:2379 is unhealthy: failed to commit proposal:"
        " context deadline exceeded (Failed to connect to 192.168.10.2 port 2379 after 0 ms:"
        " Couldn't connect to server); see journalctl -u etcd"
    )
    assert row(report, "node1", "unit:etcd").status == "fail"
    assert row(report, "master", "etcd:members").status == "pass"
    assert "node1 etcd:health" in verify.failure_summary(report)


def test_stale_member_in_its_own_cluster_is_named(cluster: Cluster) -> None:
    alone = {"header": {"cluster_id": 7}, "members": [{"name": "node2", "ID": 1}]}
    facts = with_output(healthy_facts(cluster), "node2", etcd_members=Output(0, json.dumps(alone)))
    report = verify.evaluate(cluster, facts)
    members = row(report, "node2", "etcd:members")
    assert members.status == "fail"
    assert "1 members, the inventory's etcd group has 3" in members.detail
    assert "another etcd cluster than master, node1" in members.detail


def test_missing_lease_fails_and_names_flanneld(cluster: Cluster) -> None:
    leases = {k: v for k, v in LEASES.items() if v != "192.168.10.3"}
    facts = healthy_facts(cluster)
    for host in cluster.etcd:
        facts = with_output(facts, host, flannel_subnets=http(leases_body(leases)))
    check = row(verify.evaluate(cluster, facts), "node2", "flannel:lease")
    assert check.status == "fail"
    assert "no subnet lease for 192.168.10.3" in check.detail


# ---------------------------------------------------------------------------------------------
# Report and CLI


def test_report_json_shape(cluster: Cluster) -> None:
    report = verify.evaluate(cluster, healthy_facts(cluster))
    document = json.loads(json.dumps(report.as_dict()))
    assert set(document) == {"ok", "checks"}
    assert document["ok"] is True
    for check in document["checks"]:
        assert set(check) == {"host", "check", "status", "detail"}
        assert check["status"] in ("pass", "fail", "warn", "skip")
        assert all(isinstance(check[k], str) for k in ("host", "check", "detail"))


def test_plain_table_and_summary() -> None:
    report = Report((Check("m", "ssh", "pass", "ok"), Check("node1", "unit:etcd", "fail", "x")))
    assert plain_table(report.checks).splitlines() == [
        "HOST   CHECK      STATUS  DETAIL",
        "m      ssh        PASS    ok",
        "node1  unit:etcd  FAIL    x",
    ]
    assert summary(report, "verify") == (
        "verify: FAILED (1 passed, 1 failed, 0 warnings, 0 skipped)"
    )


@pytest.mark.parametrize("broken", [False, True])
def test_cli_json_is_the_only_stdout_and_exit_code_follows_failures(
    cluster: Cluster, repo_root: Path, monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    facts = healthy_facts(cluster)
    if broken:
        facts["node1"] = HostFacts("node1", error="connection refused by 192.168.10.2:22")
    monkeypatch.setattr(verify_run, "collect", lambda cluster, **_: facts)
    result = CliRunner().invoke(
        cli, ["verify", str(repo_root / "inventories" / "reference.ini"), "--json"]
    )
    document = json.loads(result.stdout)
    assert document["ok"] is not broken
    assert result.exit_code == (1 if broken else 0)
    if broken:
        assert "verify: 1 check failed: node1 ssh" in result.stderr


def test_cli_table_when_piped(
    cluster: Cluster, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify_run, "collect", lambda cluster, **_: healthy_facts(cluster))
    result = CliRunner().invoke(cli, ["verify", str(repo_root / "inventories" / "reference.ini")])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["HOST", "CHECK", "STATUS", "DETAIL"]
    assert lines[-1].startswith("verify: OK (")


# ---------------------------------------------------------------------------------------------
# The fake API server (test double) over HTTP


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[str]:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps(ALL_READY))
    fake_apiserver.Handler.scenario_path = str(scenario)
    fake_apiserver.Handler.server_address_text = "127.0.0.1:6443"
    fake_apiserver.Handler.log_message = lambda *_: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake_apiserver.Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fetch(url: str, method: str = "GET") -> tuple[int, str, str]:
    request = urllib.request.Request(url, method=method)  # noqa: S310 -- a local test server
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_fake_apiserver_answers_like_a_15_apiserver(fake_server: str) -> None:
    assert fetch(f"{fake_server}/healthz")[::2] == (200, "ok")
    code, kind, body = fetch(f"{fake_server}/api/v1/nodes?limit=500")
    nodes = json.loads(body)
    assert (code, kind, nodes["kind"]) == (200, "application/json", "NodeList")
    assert "kind" not in nodes["items"][0]  # list items carry no TypeMeta
    conditions = [c["type"] for c in nodes["items"][0]["status"]["conditions"]]
    assert conditions == ["OutOfDisk", "MemoryPressure", "DiskPressure", "Ready"]
    resources = json.loads(fetch(f"{fake_server}/api/v1")[2])["resources"]
    assert {"name": "nodes", "namespaced": False, "kind": "Node"} in resources
    code, _, body = fetch(f"{fake_server}/api/v1/nodes/nope")
    assert code == 404
    assert json.loads(body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'nodes "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "nodes"},
        "code": 404,
    }
    assert json.loads(fetch(f"{fake_server}/api/v1/pods")[2])["reason"] == "NotFound"
    assert fetch(f"{fake_server}/api/v1/nodes", method="DELETE")[0] == 405


def test_host_text_is_never_rich_markup(
    cluster: Cluster, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    facts = healthy_facts(cluster)
    facts["node2"] = HostFacts("node2", error="sh: [/usr/bin/etcd]: [bold]denied[/bold]")
    monkeypatch.setattr(verify_run, "collect", lambda cluster, **_: facts)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich's console then treats the runner as a terminal
    monkeypatch.setenv("COLUMNS", "400")
    result = CliRunner().invoke(cli, ["verify", str(repo_root / "inventories" / "reference.ini")])
    assert "\x1b[" in result.stdout  # it was rich's table
    assert "sh: [/usr/bin/etcd]: [bold]denied[/bold]" in re.sub(
        r"\x1b\[[0-9;]*m", "", result.stdout
    )
