"""A cluster's life after `up`, on a lab of its own (it grows and shrinks): plan on a converged
cluster is empty and shows an edited file without touching it; a plain node joins without
restarting etcd anywhere else; new etcd members join through member add; remove-node takes a
member out; the CLI reaches the nodes through the master as a bastion; reset refuses without
confirmation, then leaves no etcd, data or configuration. Tests run in file order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s_provision import inventory, render
from k8s_provision import lab as lab_api
from tests.lab.helpers import cli, explain, provisioned_lab

pytestmark = pytest.mark.lab

ETCD_DATA = "/var/lib/etcd/default"


@pytest.fixture(scope="module")
def grown_lab(lab_name: str) -> Iterator[lab_api.LabState]:
    with provisioned_lab(lab_name + "l", security="classic") as state:
        yield state


def on(lab: lab_api.LabState, host: str, command: str) -> str:
    return lab_api.ssh_run(host, command, config=lab.config, check=True).stdout.strip()


def etcd_pid(lab: lab_api.LabState, host: str) -> str:
    return on(lab, host, "systemctl show -p MainPID --value etcd")


def members(lab: lab_api.LabState) -> list[str]:
    out = on(lab, "master", "ETCDCTL_API=3 etcdctl member list -w json")
    return sorted(m["name"] for m in json.loads(out)["members"])


def plan(inventory_path: Path) -> list[dict[str, str]]:
    result = cli("plan", str(inventory_path), "--json")
    assert result.returncode == 0, explain(result)
    changes: list[dict[str, str]] = json.loads(result.stdout)["changes"]
    return changes


def test_plan_on_a_converged_cluster_is_empty(grown_lab: lab_api.LabState) -> None:
    assert plan(grown_lab.inventory) == []


def test_plan_shows_an_edited_file_and_leaves_it(grown_lab: lab_api.LabState) -> None:
    on(grown_lab, "node2", "echo 'KUBE_PROXY_ARGS=\"--edited\"' >> /etc/kubernetes/proxy")
    changes = plan(grown_lab.inventory)
    files = [c for c in changes if c["kind"] == "file"]
    assert [(c["host"], c["path"]) for c in files] == [("node2", "/etc/kubernetes/proxy")]
    assert '-KUBE_PROXY_ARGS="--edited"' in files[0]["diff"]
    assert "--edited" in on(grown_lab, "node2", "cat /etc/kubernetes/proxy")
    assert cli("up", str(grown_lab.inventory)).returncode == 0
    assert "--edited" not in on(grown_lab, "node2", "cat /etc/kubernetes/proxy")


def test_a_plain_node_joins_without_restarting_etcd_elsewhere(
    grown_lab: lab_api.LabState,
) -> None:
    before = {h: etcd_pid(grown_lab, h) for h in ("master", "node1", "node2")}
    # node3: a node, not an etcd member.
    state = lab_api.up(nodes=3, config=grown_lab.config, kubernetes=False, security="classic")
    result = cli("add-node", str(state.inventory), "node3")
    assert result.returncode == 0, explain(result)
    assert "node3 joined" in result.stdout
    assert {h: etcd_pid(state, h) for h in before} == before
    cluster = inventory.load(state.inventory)
    for dest, content in render.render_host(cluster, "node3").items():
        assert on(state, "node3", f"cat {dest}") + "\n" == content
    assert members(state) == ["master", "node1", "node2"]


def test_nodes_are_reached_through_the_master_as_bastion(
    grown_lab: lab_api.LabState, tmp_path: Path
) -> None:
    # Only the bastion keeps the lab's relay; the nodes are reachable only through it.
    text = grown_lab.inventory.read_text()
    common = next(line for line in text.splitlines() if line.startswith("ansible_ssh_common_args="))
    known = common.split(" -o ProxyCommand=")[0]
    lines = [line for line in text.splitlines() if line != common]
    # Group vars take the rest of the line as it is (the relay's own quotes included).
    lines.insert(0, f"[bastion]\nbastion ansible_host=192.168.10.1\n[bastion:vars]\n{common}\n")
    lines.append(known)
    through = tmp_path / "bastion.ini"
    through.write_text("\n".join(lines) + "\n")
    cluster = inventory.load(through)
    assert cluster.bastion is not None
    assert all(h.connection.via == cluster.bastion for h in cluster.hosts)
    result = cli("verify", str(through), "--json")
    assert result.returncode == 0, explain(result)
    ssh_rows = [c for c in json.loads(result.stdout)["checks"] if c["check"] == "ssh"]
    assert {c["host"] for c in ssh_rows if c["status"] == "pass"} >= {"master", "node1", "node2"}
    assert plan(through) == []


@pytest.fixture(scope="module")
def five(grown_lab: lab_api.LabState, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab grown to 4 nodes, with node3 and node4 added to the etcd group."""
    state = lab_api.up(nodes=4, config=grown_lab.config, kubernetes=False, security="classic")
    path = tmp_path_factory.mktemp("five") / "five.ini"
    path.write_text(state.inventory.read_text().replace("[etcd]\n", "[etcd]\nnode3\nnode4\n"))
    return path


def test_new_etcd_members_join_through_member_add(grown_lab: lab_api.LabState, five: Path) -> None:
    state = grown_lab
    assert inventory.load(five).etcd == ("node3", "node4", "master", "node1", "node2")
    result = cli("add-node", str(five), "node3", "node4")
    assert result.returncode == 0, explain(result)
    assert members(state) == ["master", "node1", "node2", "node3", "node4"]
    verify = cli("verify", str(five), "--json")
    assert verify.returncode == 0, explain(verify)
    health = [c for c in json.loads(verify.stdout)["checks"] if c["check"] == "etcd:health"]
    assert len(health) == 5 and all(c["status"] == "pass" for c in health)


def test_remove_node_takes_the_members_out(grown_lab: lab_api.LabState, five: Path) -> None:
    refused = cli("remove-node", str(five), "node4")
    assert refused.returncode == 2
    assert "pass --yes" in refused.stderr
    result = cli("remove-node", str(five), "node3", "node4", "--yes")
    assert result.returncode == 0, explain(result)
    assert "member" in result.stdout and "delete node3, node4 from" in result.stdout
    assert members(grown_lab) == ["master", "node1", "node2"]
    for host in ("node3", "node4"):
        assert on(grown_lab, host, "systemctl is-active etcd || true") != "active"
        assert on(grown_lab, host, f"test -e {ETCD_DATA} && echo left || echo gone") == "gone"


def test_reset_refuses_without_confirmation_then_wipes(grown_lab: lab_api.LabState) -> None:
    refused = cli("reset", str(grown_lab.inventory))
    assert refused.returncode == 2
    assert "pass --yes" in refused.stderr
    assert on(grown_lab, "master", "systemctl is-active etcd") == "active"
    result = cli("reset", str(grown_lab.inventory), "--yes")
    assert result.returncode == 0, explain(result)
    cluster = inventory.load(grown_lab.inventory)
    for host in cluster.hosts:
        assert on(grown_lab, host.name, "systemctl is-active etcd || true") != "active"
        assert on(grown_lab, host.name, f"test -e {ETCD_DATA} && echo left || echo gone") == "gone"
        for dest in render.render_host(cluster, host.name):
            assert on(grown_lab, host.name, f"test -e {dest} && echo left || echo gone") == "gone"
