"""A running classic (plaintext) cluster switched to k8s_security=tls is migrated in place:
`plan` shows the migration first, an `up` killed half-way through it is finished by the next
`up`, and afterwards every member is listed with an https peer URL, keeps its member id and
its data (a v3 key and flannel's v2 key), and plain http is refused. Tests run in file order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s_provision import lab as lab_api
from tests.lab.helpers import CLI, cli, explain, provisioned_lab

pytestmark = pytest.mark.lab

TOOL = (
    "--cacert=/etc/etcd/pki/etcd-ca.crt --cert=/etc/etcd/pki/etcd-client.crt"
    " --key=/etc/etcd/pki/etcd-client.key"
)
PLAIN = "--endpoints=http://192.168.10.1:2379"
SECURE = "--endpoints=https://192.168.10.1:2379"
DROPIN = "/run/systemd/system/etcd.service.d/k8s-provision-tls-migration.conf"
FLANNEL_KEY = "/atomic.io/network/config"


@pytest.fixture(scope="module")
def classic_lab(lab_name: str) -> Iterator[lab_api.LabState]:
    with provisioned_lab(lab_name + "mig", security="classic") as state:
        yield state


@pytest.fixture(scope="module")
def tls_inventory(classic_lab: lab_api.LabState, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("migration")
    path = base / "tls.ini"
    path.write_text(
        classic_lab.inventory.read_text().replace("k8s_security=classic", "k8s_security=tls")
        + f"kube_pki_source={base / 'pki'}\n"
    )
    return path


def run(lab: lab_api.LabState, host: str, command: str) -> subprocess.CompletedProcess[str]:
    return lab_api.ssh_run(host, command, config=lab.config)


def members(lab: lab_api.LabState, args: str) -> dict[str, tuple[int, list[str]]]:
    out = run(lab, "master", f"ETCDCTL_API=3 etcdctl {args} member list -w json")
    assert out.returncode == 0, out.stdout + out.stderr
    return {m["name"]: (m["ID"], m["peerURLs"]) for m in json.loads(out.stdout)["members"]}


@pytest.fixture(scope="module")
def before(classic_lab: lab_api.LabState) -> dict[str, object]:
    put = run(classic_lab, "master", f"ETCDCTL_API=3 etcdctl {PLAIN} put /k8sp/kept before-tls")
    assert put.returncode == 0, put.stderr
    flannel = run(classic_lab, "node1", f"ETCDCTL_API=2 etcdctl {PLAIN} get {FLANNEL_KEY}")
    assert flannel.returncode == 0, flannel.stderr
    return {"members": members(classic_lab, PLAIN), "flannel": flannel.stdout.strip()}


def test_plan_shows_the_migration_first(
    classic_lab: lab_api.LabState, tls_inventory: Path, before: dict[str, object]
) -> None:
    result = cli("plan", str(tls_inventory), "--json")
    assert result.returncode == 0, explain(result)
    changes = json.loads(result.stdout)["changes"]
    assert changes and changes[0]["kind"] == "migration", changes[:3]
    assert "master, node1, node2" in changes[0]["diff"]
    assert all(c["kind"] != "migration" for c in changes[1:])


def test_an_up_killed_during_the_migration_is_finished_by_the_next(
    classic_lab: lab_api.LabState, tls_inventory: Path, before: dict[str, object]
) -> None:
    proc = subprocess.Popen(
        [CLI, "up", str(tls_inventory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # Killed once the second member is being prepared: the first runs with its
        # certificates on plain http, the others are untouched.
        deadline = time.monotonic() + 600
        while run(classic_lab, "node1", f"test -e {DROPIN}").returncode != 0:
            assert proc.poll() is None, f"up ended ({proc.returncode}) before the migration"
            assert time.monotonic() < deadline, "the migration never reached node1"
            time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    result = cli("up", str(tls_inventory))
    assert result.returncode == 0, explain(result)


def test_every_member_is_on_https_with_its_id_and_data(
    classic_lab: lab_api.LabState, before: dict[str, object]
) -> None:
    after = members(classic_lab, f"{TOOL} {SECURE}")
    old = before["members"]
    assert isinstance(old, dict)
    assert {name: ident for name, (ident, _) in after.items()} == {
        name: ident for name, (ident, _) in old.items()
    }
    assert all(urls and all(u.startswith("https://") for u in urls) for _, urls in after.values())
    kept = run(classic_lab, "master", f"ETCDCTL_API=3 etcdctl {TOOL} {SECURE} get /k8sp/kept")
    assert kept.stdout.split() == ["/k8sp/kept", "before-tls"], kept.stdout + kept.stderr
    v2 = (
        TOOL.replace("--cacert", "--ca-file")
        .replace("--cert=", "--cert-file=")
        .replace("--key=", "--key-file=")
    )
    flannel = run(classic_lab, "node2", f"ETCDCTL_API=2 etcdctl {v2} {SECURE} get {FLANNEL_KEY}")
    assert flannel.stdout.strip() == before["flannel"], flannel.stdout + flannel.stderr
    for host in ("master", "node1", "node2"):
        assert run(classic_lab, host, f"test -e {DROPIN}").returncode != 0, host


def test_plain_http_is_refused_and_verify_passes(
    classic_lab: lab_api.LabState, tls_inventory: Path
) -> None:
    plain = run(
        classic_lab, "master", f"ETCDCTL_API=3 etcdctl {PLAIN} --dial-timeout=3s endpoint health"
    )
    assert plain.returncode != 0
    result = cli("verify", str(tls_inventory), "--json")
    assert result.returncode == 0, explain(result)
    checks = json.loads(result.stdout)["checks"]
    plaintext = [c for c in checks if c["check"] == "security:etcd-plaintext"]
    assert len(plaintext) == 3 and all(c["status"] == "pass" for c in plaintext), plaintext


def test_a_rerun_changes_nothing(classic_lab: lab_api.LabState, tls_inventory: Path) -> None:
    result = cli("plan", str(tls_inventory), "--json")
    assert result.returncode == 0, explain(result)
    assert json.loads(result.stdout)["changes"] == []
