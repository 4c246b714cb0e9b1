"""The cluster lock's host scripts run for real (sh, flock) in a temporary directory through a
labelled double of the transport; only SSH is left out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from k8s_provision import inventory, lock
from k8s_provision.errors import LockHeld
from k8s_provision.model import Cluster
from tests.doubles import LocalShellTransport

REFERENCE = Path(__file__).resolve().parents[2] / "inventories" / "reference.ini"


@pytest.fixture
def cluster() -> Cluster:
    return inventory.load(REFERENCE)


def make(cluster: Cluster, tmp_path: Path, operation: str = "up") -> lock.ClusterLock:
    return lock.ClusterLock(
        cluster.master, LocalShellTransport(), operation, lock_dir=str(tmp_path)
    )


def test_second_run_exits_naming_the_holder(cluster: Cluster, tmp_path: Path) -> None:
    first = make(cluster, tmp_path, "remove-node")
    first.acquire(timeout=0)
    try:
        with pytest.raises(LockHeld) as held:
            make(cluster, tmp_path).acquire(timeout=0)
        me = first.me
        assert f"remove-node by {me.user}@{me.controller} (pid {me.pid}) since {me.since}" in (
            held.value.message
        )
        assert held.value.exit_code == 1
    finally:
        first.release()
    assert not (tmp_path / "lock").exists()


def test_a_waiting_run_gets_the_lock_when_the_holder_releases(
    cluster: Cluster, tmp_path: Path
) -> None:
    first = make(cluster, tmp_path)
    first.acquire(timeout=0)
    threading.Timer(1.0, first.release).start()
    second = make(cluster, tmp_path)
    started = time.monotonic()
    second.acquire(timeout=20)
    assert time.monotonic() - started >= 1.0
    assert json.loads((tmp_path / "lock").read_text())["token"] == second.me.token
    second.release()


def test_a_lock_of_a_killed_run_on_this_controller_is_taken_over(
    cluster: Cluster, tmp_path: Path
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    record = make(cluster, tmp_path).me
    stale = json.dumps({**json.loads(record.record()), "pid": int(dead.stdout)}, sort_keys=True)
    (tmp_path / "lock").write_text(stale + "\n")
    notes: list[str] = []
    taker = lock.ClusterLock(
        cluster.master, LocalShellTransport(), "up", lock_dir=str(tmp_path), on_note=notes.append
    )
    taker.acquire(timeout=0)
    assert "taking over the stale lock" in notes[0]
    taker.release()


def test_a_lock_not_renewed_within_the_lease_is_taken_over(
    cluster: Cluster, tmp_path: Path
) -> None:
    other = {**json.loads(make(cluster, tmp_path).me.record()), "controller": "elsewhere"}
    path = tmp_path / "lock"
    path.write_text(json.dumps(other, sort_keys=True) + "\n")
    with pytest.raises(LockHeld):
        make(cluster, tmp_path).acquire(timeout=0)
    old = time.time() - lock.LEASE_SECONDS - 5
    os.utime(path, (old, old))
    taker = make(cluster, tmp_path)
    taker.acquire(timeout=0)
    taker.release()


def test_release_never_removes_a_lock_someone_else_took_over(
    cluster: Cluster, tmp_path: Path
) -> None:
    first = make(cluster, tmp_path)
    first.acquire(timeout=0)
    (tmp_path / "lock").write_text('{"someone": "else"}\n')
    first.release()
    assert (tmp_path / "lock").read_text() == '{"someone": "else"}\n'
