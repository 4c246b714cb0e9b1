"""The classic-to-tls migration plan of etcd (k8s_provision.etcd_migration): its probe run by a
real shell against a real process environment, and the plan chosen from what members run
with and what the membership lists, for every point where a run can stop."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from k8s_provision import etcd_migration

HOSTS = ["master", "node1", "node2"]
MODEL = [
    {"name": "master", "member_name": "master"},
    {"name": "node1", "member_name": "node1"},
    {"name": "node2", "member_name": "node2"},
]
IDS = {"master": 11259375, "node1": 2748, "node2": 1}  # hex abcdef, abc, 1
CLASSIC_ENV = "ETCD_LISTEN_PEER_URLS=http://10.0.0.1:2380"
PREPARED_ENV = CLASSIC_ENV + "\nETCD_PEER_CERT_FILE=/etc/etcd/pki/etcd-member.crt"
TLS_ENV = "ETCD_LISTEN_PEER_URLS=https://10.0.0.1:2380\nETCD_PEER_CERT_FILE=/etc/etcd/pki/m.crt"


def membership(https: set[str]) -> str:
    scheme = {h: "https" if h in https else "http" for h in HOSTS}
    return json.dumps(
        {
            "header": {"cluster_id": 1},
            "members": [
                {"ID": IDS[h], "name": h, "peerURLs": [f"{scheme[h]}://10.0.0.{i}:2380"]}
                for i, h in enumerate(HOSTS, 1)
            ],
        }
    )


def result(env: str, https: set[str] | None = None) -> dict[str, Any]:
    listed = membership(https) if https is not None else ""
    return {"stdout": f"{env}\n{listed}\n", "rc": 0}


def plan(*results: dict[str, Any]) -> dict[str, Any]:
    return etcd_migration.plan(list(results), HOSTS, MODEL)


def test_a_running_classic_cluster_is_prepared_then_switched_member_by_member() -> None:
    got = plan(*(result(CLASSIC_ENV, set()) for _ in HOSTS))
    assert got == {
        "prepare": HOSTS,
        "switch": HOSTS,
        "member_ids": {"master": "abcdef", "node1": "abc", "node2": "1"},
    }


def test_a_run_stopped_after_preparing_one_member_goes_on_from_there() -> None:
    got = plan(result(PREPARED_ENV, set()), result(CLASSIC_ENV), result(CLASSIC_ENV))
    assert got["prepare"] == ["node1", "node2"]
    assert got["switch"] == HOSTS


def test_a_run_stopped_between_member_update_and_restart_restarts_that_member() -> None:
    # master is listed with https already but its process still serves http.
    got = plan(
        result(PREPARED_ENV, {"master"}), result(PREPARED_ENV, {"master"}), result(PREPARED_ENV)
    )
    assert got["prepare"] == []
    assert got["switch"] == HOSTS
    assert "master" not in got["member_ids"] and set(got["member_ids"]) == {"node1", "node2"}


def test_a_member_rebooted_onto_the_tls_file_is_still_listed_and_switched() -> None:
    # The runtime drop-in is gone after a reboot: the process serves https, the membership
    # still lists http; member update is still due, preparing is not.
    got = plan(result(TLS_ENV, set()), result(PREPARED_ENV), result(PREPARED_ENV))
    assert got["prepare"] == []
    assert got["switch"] == HOSTS and got["member_ids"]["master"] == "abcdef"


def test_a_migrated_cluster_and_a_new_member_need_nothing() -> None:
    done = result(TLS_ENV, set(HOSTS))
    assert plan(done, done, {"skipped": True}) == {"prepare": [], "switch": [], "member_ids": {}}


def test_the_membership_is_read_from_whichever_member_answered() -> None:
    got = plan(result(CLASSIC_ENV), result(""), result(CLASSIC_ENV, set()))
    assert got["member_ids"] == {"master": "abcdef", "node1": "abc", "node2": "1"}
    # node1's etcd is stopped: it has no certificate yet and is prepared (started) too.
    assert got["prepare"] == HOSTS


@pytest.fixture
def fake_tools(tmp_path: Path) -> Path:
    """Doubles of systemctl and etcdctl (no etcd or systemd in a unit test): systemctl
    answers the MainPID given in $FAKE_PID as systemd 219 prints it; etcdctl refuses https
    endpoints, as a member serving plain http does, and lists the membership over http."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text('#!/bin/sh\necho "MainPID=$FAKE_PID"\n')
    (bin_dir / "etcdctl").write_text(
        "#!/bin/sh\n"
        'case "$*" in *--endpoints=https*) echo "tls: first record" >&2; exit 1;; esac\n'
        f"echo '{membership(set())}'\n"
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def test_the_probe_reads_the_running_process_environment(fake_tools: Path) -> None:
    script = etcd_migration.probe_script(
        ["--cacert=/etc/etcd/pki/etcd-ca.crt"], "https://127.0.0.1:2379", "http://127.0.0.1:2379"
    )
    env = {"PATH": f"{fake_tools}:/usr/bin:/bin", "ETCD_PEER_CERT_FILE": "/p.crt"}
    daemon = subprocess.Popen(
        ["sleep", "30"], env={**env, "ETCD_LISTEN_PEER_URLS": "http://10.0.0.1:2380"}
    )
    try:
        out = subprocess.run(
            ["sh", "-c", script],
            env={"PATH": env["PATH"], "FAKE_PID": str(daemon.pid)},
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        daemon.kill()
        daemon.wait()
    served = etcd_migration.parse_probe(out.stdout)
    assert served.running and served.plaintext and served.peer_certificate
    assert [m["name"] for m in served.members] == HOSTS
    # A stopped etcd (MainPID=0) reports no environment and is not running.
    stopped = subprocess.run(
        ["sh", "-c", script],
        env={"PATH": f"{fake_tools}:/usr/bin:/bin", "FAKE_PID": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert not etcd_migration.parse_probe(stopped.stdout).running
