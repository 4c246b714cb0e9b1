"""remove-node's and add-node's etcd guards against a labelled in-memory etcd (EtcdDouble)."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_provision import inventory, membership
from k8s_provision.errors import OperationFailed
from k8s_provision.model import Cluster, Host
from tests.doubles import EtcdDouble

REFERENCE = Path(__file__).resolve().parents[2] / "inventories" / "reference.ini"


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(membership, "REMOVE_RETRY_DELAY", 0.0)


@pytest.fixture
def cluster() -> Cluster:
    return inventory.load(REFERENCE)


def started(cluster: Cluster, name: str, member_id: int) -> dict[str, object]:
    host = cluster.host(name)
    return {
        "ID": member_id,
        "name": name,
        "peerURLs": [membership.peer_url(cluster, host)],
        "clientURLs": [membership.client_url(cluster, host)],
    }


def etcd(cluster: Cluster, *, sick: tuple[str, ...] = ()) -> EtcdDouble:
    members = [started(cluster, n, 0x10 + i) for i, n in enumerate(cluster.etcd)]
    healthy = {
        membership.client_url(cluster, cluster.host(n)) for n in cluster.etcd if n not in sick
    }
    return EtcdDouble(members, healthy)


def hosts(cluster: Cluster, *names: str) -> list[Host]:
    return [cluster.host(n) for n in names]


def test_remove_goes_through_any_healthy_member_and_matches_by_peer_url(
    cluster: Cluster,
) -> None:
    double = etcd(cluster)
    double.down.add("master")  # the first member does not answer SSH: the next one is asked
    # node2's member is known by peer URL only (its name differs from the inventory's)
    double.members[2]["name"] = "renamed"
    seen = membership.observe(cluster, double, hosts(cluster, "master", "node1"))
    assert seen.via.name == "node1"
    (member,) = seen.find(cluster, cluster.host("node2"))
    membership.check_remove(seen, [member], force=False)
    assert membership.remove(cluster, double, seen, member).startswith("member 12 (renamed")
    assert double.removed == ["12"]
    remove_line = double.commands[-1][1]
    assert "member remove 12" in remove_line
    assert membership.client_url(cluster, cluster.host("node2")) not in remove_line


def test_an_unstarted_member_of_a_failed_add_node_is_found_and_removed(
    cluster: Cluster,
) -> None:
    double = etcd(cluster)
    node2 = cluster.host("node2")
    double.members[2] = {"ID": 0x99, "peerURLs": [membership.peer_url(cluster, node2)]}
    seen = membership.observe(cluster, double, hosts(cluster, "master", "node1"))
    (member,) = seen.find(cluster, node2)
    assert not member.started
    membership.check_remove(seen, [member], force=False)
    membership.remove(cluster, double, seen, member)
    assert double.removed == ["99"]


def test_remove_refuses_while_another_member_is_unhealthy(cluster: Cluster) -> None:
    double = etcd(cluster, sick=("node1",))
    seen = membership.observe(cluster, double, hosts(cluster, "master", "node1"))
    with pytest.raises(OperationFailed) as refused:
        membership.check_remove(seen, seen.find(cluster, cluster.host("node2")), force=True)
    assert "below quorum" in refused.value.message
    assert double.removed == []


def test_a_dead_leaving_member_needs_force(cluster: Cluster) -> None:
    double = etcd(cluster, sick=("node2",))
    seen = membership.observe(cluster, double, hosts(cluster, "master", "node1"))
    leaving = seen.find(cluster, cluster.host("node2"))
    with pytest.raises(OperationFailed) as refused:
        membership.check_remove(seen, leaving, force=False)
    assert "--force" in "\n".join(refused.value.details)
    membership.check_remove(seen, leaving, force=True)


def test_member_remove_is_retried_while_etcd_settles(cluster: Cluster) -> None:
    double = etcd(cluster)
    double.fail_removes = 2
    seen = membership.observe(cluster, double, hosts(cluster, "master"))
    membership.remove(cluster, double, seen, seen.find(cluster, cluster.host("node2"))[0])
    assert double.removed == ["12"]
    double.fail_removes = membership.REMOVE_ATTEMPTS
    with pytest.raises(OperationFailed, match="unhealthy cluster"):
        membership.remove(cluster, double, seen, seen.find(cluster, cluster.host("node1"))[0])


def test_add_refuses_with_an_unhealthy_member_and_completes_a_pending_one(
    cluster: Cluster,
) -> None:
    node2 = cluster.host("node2")
    double = etcd(cluster, sick=("node1",))
    seen = membership.observe(cluster, double, hosts(cluster, "master"))
    with pytest.raises(OperationFailed, match="not every current member is healthy"):
        membership.check_add(seen, cluster, [node2])
    # node2 was added by a failed add-node and never started: adding node2 again completes it
    double = etcd(cluster)
    double.members[2] = {"ID": 0x99, "peerURLs": [membership.peer_url(cluster, node2)]}
    double.healthy.discard(membership.client_url(cluster, node2))
    seen = membership.observe(cluster, double, hosts(cluster, "master"))
    membership.check_add(seen, cluster, [node2])
    # ... but blocks adding any other host, since it counts towards quorum
    with pytest.raises(OperationFailed, match="never started"):
        membership.check_add(seen, cluster, [cluster.host("node1")])


def test_no_answering_member_is_a_clear_error(cluster: Cluster) -> None:
    double = etcd(cluster)
    double.down.update(cluster.etcd)
    with pytest.raises(OperationFailed, match="no etcd member answers"):
        membership.observe(cluster, double, hosts(cluster, *cluster.etcd))
