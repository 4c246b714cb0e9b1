"""The phase manager and the phases that talk to hosts, against labelled doubles: an in-memory
etcd (EtcdDouble) for membership, this machine's sh for the lock scripts (LocalShellTransport),
and a recording output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from k8s_provision import inventory, membership, ssh
from k8s_provision.errors import OperationFailed
from k8s_provision.model import Cluster, Host
from k8s_provision.phases import operations, steps
from k8s_provision.phases.manager import Context, Phase, run_phases
from k8s_provision.runner import RunOptions
from tests.doubles import EtcdDouble, LocalShellTransport, RecordingOutput

REFERENCE = Path(__file__).resolve().parents[2] / "inventories" / "reference.ini"


class EtcdWithLock(EtcdDouble):
    """DOUBLE: EtcdDouble for etcdctl, this machine's sh for the lock's host scripts."""

    shell = LocalShellTransport()

    def run(self, host: Host, command: str, timeout: float = ssh.COMMAND_TIMEOUT) -> ssh.Result:
        if "flock" in command:
            return self.shell.run(host, command, timeout)
        return super().run(host, command, timeout)


@pytest.fixture
def cluster() -> Cluster:
    return inventory.load(REFERENCE)


def etcd(cluster: Cluster, sick: tuple[str, ...] = ()) -> EtcdWithLock:
    members: list[dict[str, object]] = [
        {
            "ID": 0x10 + i,
            "name": n,
            "peerURLs": [membership.peer_url(cluster, cluster.host(n))],
            "clientURLs": [membership.client_url(cluster, cluster.host(n))],
        }
        for i, n in enumerate(cluster.etcd)
    ]
    healthy = {
        membership.client_url(cluster, cluster.host(n)) for n in cluster.etcd if n not in sick
    }
    return EtcdWithLock(members, healthy)


def context(cluster: Cluster, transport: EtcdDouble, **fields: Any) -> Context:
    return Context(
        cluster,
        REFERENCE,
        RunOptions(),
        transport,
        RecordingOutput(),
        **fields,
    )


@dataclass
class Step:
    title: str
    wanted: bool = True
    fails: bool = False

    def should_run(self, ctx: Context) -> bool:
        return self.wanted

    def run(self, ctx: Context) -> None:
        ctx.out.note(f"run {self.title}")
        ctx.cleanups.append(lambda: ctx.out.note(f"cleanup {self.title}"))
        if self.fails:
            raise OperationFailed(f"{self.title} failed")

    def dry_run(self, ctx: Context) -> None:
        ctx.out.note(f"dry {self.title}")


def test_manager_runs_in_order_skips_and_cleans_up_last_first_on_failure(
    cluster: Cluster,
) -> None:
    ctx = context(cluster, etcd(cluster))
    with pytest.raises(OperationFailed):
        run_phases([Step("a"), Step("b", wanted=False), Step("c", fails=True), Step("d")], ctx)
    assert isinstance(ctx.out, RecordingOutput)
    assert ctx.out.lines == ["run a", "run c", "cleanup c", "cleanup a"]
    dry = context(cluster, etcd(cluster))
    run_phases([Step("a"), Step("b")], dry, dry=True)
    assert isinstance(dry.out, RecordingOutput)
    assert dry.out.lines == ["dry a", "dry b"]


def test_remove_node_refuses_before_touching_anything_and_releases_the_lock(
    cluster: Cluster, tmp_path: Path
) -> None:
    double = etcd(cluster, sick=("node1",))
    ctx = context(cluster, double, hosts=["node2"])
    phases: list[Phase] = [
        steps.TakeLock("remove-node", lock_dir=str(tmp_path)),
        steps.CheckRemove(),
    ]
    with pytest.raises(OperationFailed, match="below quorum"):
        run_phases(phases, ctx)
    assert double.removed == []
    assert not (tmp_path / "lock").exists()


def test_remove_node_removes_members_one_at_a_time_through_a_member_that_answers(
    cluster: Cluster, tmp_path: Path
) -> None:
    double = etcd(cluster)
    double.down.add("master")
    ctx = context(cluster, double, hosts=["node2"])
    phases: list[Phase] = [
        steps.TakeLock("remove-node", lock_dir=str(tmp_path)),
        steps.CheckRemove(),
        steps.RemoveMembers(),
    ]
    run_phases(phases, ctx)
    assert double.removed == ["12"]
    assert [r.detail for r in ctx.removals] == [
        f"member 12 (node2, {membership.peer_url(cluster, cluster.host('node2'))}) removed"
    ]
    assert {h for h, c in double.commands if "member remove" in c} == {"node1"}


def test_remove_node_dry_run_changes_nothing(cluster: Cluster, tmp_path: Path) -> None:
    double = etcd(cluster)
    ctx = context(cluster, double, hosts=["node2"])
    phases: list[Phase] = [
        steps.CheckRemove(),
        steps.DeleteKubeNodes(),
        steps.RemoveMembers(),
        steps.ResetHosts(named=True),
    ]
    run_phases(phases, ctx, dry=True)
    assert double.removed == []
    assert isinstance(ctx.out, RecordingOutput)
    assert ctx.out.lines[-1] == "would run reset.yml on node2"


def test_add_node_refuses_when_a_member_is_down(cluster: Cluster, tmp_path: Path) -> None:
    double = etcd(cluster, sick=("node1",))
    ctx = context(cluster, double, hosts=["node2"])
    with pytest.raises(OperationFailed, match="not every current member is healthy"):
        run_phases(
            [steps.TakeLock("add-node", lock_dir=str(tmp_path)), steps.CheckMemberAdd()], ctx
        )
    assert not (tmp_path / "lock").exists()


def test_every_operation_takes_the_lock_first() -> None:
    for phases in (
        operations.up_phases(),
        operations.plan_phases(),
        operations.add_node_phases(),
        operations.remove_node_phases(),
        operations.reset_phases(),
    ):
        assert isinstance(phases[0], steps.TakeLock)
