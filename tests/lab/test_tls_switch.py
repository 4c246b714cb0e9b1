"""A running classic (plaintext) cluster is not switched to TLS in place: the rolling
migration is not built, so `up` with k8s_security=tls refuses before changing etcd, and the
cluster keeps running as it was."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s_provision import lab as lab_api

pytestmark = pytest.mark.lab

CLI = str(Path(sys.executable).parent / "k8s-provision")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def classic_lab(lab_name: str) -> Iterator[lab_api.LabState]:
    config = lab_api.make_config(lab_name + "sw")
    lab_api.down(config=config)
    try:
        state = lab_api.up(nodes=2, config=config, kubernetes=False, security="classic")
        result = cli("up", str(state.inventory))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        yield state
    finally:
        lab_api.down(config=config)


def test_up_with_tls_on_a_running_classic_cluster_refuses(
    classic_lab: lab_api.LabState, tmp_path: Path
) -> None:
    switched = tmp_path / "tls.ini"
    switched.write_text(
        classic_lab.inventory.read_text().replace("k8s_security=classic", "k8s_security=tls")
        + f"kube_pki_source={tmp_path / 'pki'}\n"
    )
    result = cli("up", str(switched), "--full")
    assert result.returncode == 1
    assert "rolling migration of a running cluster is not built" in result.stdout + result.stderr
    etcd = lab_api.ssh_run(
        "master", "grep ^ETCD_LISTEN_PEER_URLS /etc/default/etcd", config=classic_lab.config
    )
    assert '"http://' in etcd.stdout  # untouched
    health = lab_api.ssh_run(
        "master",
        "ETCDCTL_API=3 etcdctl --endpoints=http://192.168.10.1:2379 endpoint health",
        config=classic_lab.config,
    )
    assert health.returncode == 0, health.stderr
