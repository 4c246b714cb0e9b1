"""site.yml and reset.yml on the lab: a real 3-member etcd cluster, the flannel network key in
etcd, every file `k8s-provision render` writes on the hosts byte for byte, nothing changed by
a second run, the preflight refusals, and reset. The Debian lab has no kube, flannel or docker
packages: the run must say those services were skipped.

The tests run in file order and share the session lab; the last one leaves it converged."""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from k8s_provision import inventory, render
from k8s_provision import lab as lab_api
from k8s_provision.model import Cluster

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent.parent
VENV_BIN = Path(sys.executable).parent
RECAP_RE = re.compile(
    r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE
)
FAKE_PYTHON = "/usr/local/bin/k8sp-fake-python36"


def playbook(lab: lab_api.LabState, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(lab.inventory),
            f"k8s_provision.cluster.{name.removesuffix('.yml')}",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
        check=False,
    )


def recap(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    return {
        host: {"ok": int(ok), "changed": int(ch), "unreachable": int(un), "failed": int(fa)}
        for host, ok, ch, un, fa in RECAP_RE.findall(result.stdout)
    }


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"


def run_on(lab: lab_api.LabState, host: str, command: str) -> str:
    return lab_api.ssh_run(host, command, config=lab.config, check=True).stdout


def status_on(lab: lab_api.LabState, host: str, command: str) -> int:
    return lab_api.ssh_run(host, command, config=lab.config).returncode


@pytest.fixture(scope="module")
def cluster(lab: lab_api.LabState) -> Cluster:
    return inventory.load(lab.inventory)


@pytest.fixture(scope="module")
def converged(lab: lab_api.LabState) -> subprocess.CompletedProcess[str]:
    """The first site.yml run of this module."""
    result = playbook(lab, "site.yml")
    assert result.returncode == 0, explain(result)
    return result


def test_site_starts_three_healthy_etcd_members(
    lab: lab_api.LabState, converged: subprocess.CompletedProcess[str], cluster: Cluster
) -> None:
    assert len(cluster.etcd) == 3
    for host in cluster.etcd:
        assert run_on(lab, host, "systemctl is-active etcd").strip() == "active"
        assert run_on(lab, host, "systemctl is-enabled etcd").strip() == "enabled"
    v3 = run_on(lab, "master", "ETCDCTL_API=3 etcdctl endpoint health --cluster 2>&1")
    for host in cluster.etcd:
        assert f"http://{cluster.host(host).ip}:2379 is healthy" in v3, v3
    v2 = run_on(lab, "master", "ETCDCTL_API=2 etcdctl cluster-health")
    assert "cluster is healthy" in v2, v2
    assert v2.count("is healthy: got healthy result") == 3, v2
    members = run_on(lab, "master", "ETCDCTL_API=3 etcdctl member list -w json")
    names = sorted(m["name"] for m in json.loads(members)["members"])
    assert names == sorted(cluster.etcd)


def test_flannel_network_key_is_readable_from_every_member(
    lab: lab_api.LabState, converged: subprocess.CompletedProcess[str], cluster: Cluster
) -> None:
    expected = render.flannel_network_config(cluster.settings)
    key = f"{cluster.settings.flannel_etcd_prefix}/config"
    for host in cluster.etcd:
        through_http = json.loads(run_on(lab, host, f"curl -s http://127.0.0.1:2379/v2/keys{key}"))
        assert json.loads(through_http["node"]["value"]) == expected, (host, through_http)
        through_etcdctl = run_on(lab, host, f"ETCDCTL_API=2 etcdctl get {key}")
        assert json.loads(through_etcdctl) == expected
    assert expected["Network"] == cluster.settings.flannel_network


def test_every_host_lists_the_cluster_hosts_in_etc_hosts(
    lab: lab_api.LabState, converged: subprocess.CompletedProcess[str], cluster: Cluster
) -> None:
    expected = [f"{host.ip} {host.name}" for host in cluster.hosts]
    for host in cluster.hosts:
        lines = run_on(lab, host.name, "cat /etc/hosts").splitlines()
        begin = lines.index("# BEGIN k8s-provision cluster hosts")
        assert lines[begin + 1 : begin + 1 + len(expected)] == expected, (host.name, lines)


def test_hosts_hold_exactly_the_files_render_writes(
    lab: lab_api.LabState, converged: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    out = tmp_path / "rendered"
    result = subprocess.run(
        [str(VENV_BIN / "k8s-provision"), "render", str(lab.inventory), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    hosts = sorted(p.name for p in out.iterdir())
    assert hosts == ["master", "node1", "node2"]
    compared = 0
    for host_dir in out.iterdir():
        for local in sorted(p for p in host_dir.rglob("*") if p.is_file()):
            dest = "/" + str(local.relative_to(host_dir))
            remote = run_on(
                lab, host_dir.name, f"base64 -w0 {dest}; echo; stat -c '%a %U %G' {dest}"
            )
            content, attributes = remote.splitlines()
            assert base64.b64decode(content) == local.read_bytes(), f"{host_dir.name}:{dest}"
            assert attributes == "644 root root", f"{host_dir.name}:{dest}"
            compared += 1
    # master: etcd, flannel network, flanneld, config, apiserver, controller-manager,
    # scheduler; each node: etcd, flanneld, config, kubelet, proxy.
    assert compared == 7 + 5 + 5


def test_services_without_debian_packages_are_reported_skipped(
    lab: lab_api.LabState, converged: subprocess.CompletedProcess[str]
) -> None:
    for what in ("flanneld is neither", "docker is neither", "kube-apiserver,", "kubelet and"):
        assert f"skipped: {what}" in converged.stdout, what
    for service in ("flanneld", "docker", "kube-apiserver", "kubelet", "kube-proxy"):
        assert status_on(lab, "master", f"systemctl cat {service}.service") != 0


def test_second_run_changes_nothing(
    lab: lab_api.LabState, converged: subprocess.CompletedProcess[str]
) -> None:
    result = playbook(lab, "site.yml")
    assert result.returncode == 0, explain(result)
    counters = recap(result)
    assert sorted(counters) == ["master", "node1", "node2"]
    for host, counts in counters.items():
        assert counts["changed"] == 0, (host, explain(result))
        assert counts["failed"] == counts["unreachable"] == 0


def test_preflight_refuses_a_python_too_old_for_ansible_core(
    lab: lab_api.LabState, converged: subprocess.CompletedProcess[str]
) -> None:
    # An "interpreter" that answers the raw probe like CentOS 7's python3.
    script = "#!/bin/sh\necho /usr/bin/python3.6 3.6\n"
    fake = f"printf %s {shlex.quote(script)} > {FAKE_PYTHON} && chmod 755 {FAKE_PYTHON}"
    try:
        for host in ("master", "node1", "node2"):
            run_on(lab, host, fake)
        result = playbook(lab, "site.yml", "-e", f"ansible_python_interpreter={FAKE_PYTHON}")
    finally:
        for host in ("master", "node1", "node2"):
            run_on(lab, host, f"rm -f {FAKE_PYTHON}")
    assert result.returncode == 2, explain(result)
    assert "has Python 3.6 (/usr/bin/python3.6)" in result.stdout
    assert "pip install 'k8s-provision[el7]'" in result.stdout
    assert all(c["changed"] == 0 for c in recap(result).values())
    assert "PLAY [Prepare the hosts]" not in result.stdout


def test_preflight_refuses_an_os_family_that_does_not_match(
    lab: lab_api.LabState, converged: subprocess.CompletedProcess[str]
) -> None:
    result = playbook(lab, "site.yml", "-e", "k8s_os_family=redhat")
    assert result.returncode == 2, explain(result)
    assert "runs Debian" in result.stdout
    assert "k8s_os_family=redhat" in result.stdout
    assert "PLAY [Prepare the hosts]" not in result.stdout


def test_preflight_refuses_own_binaries_as_not_supported(
    lab: lab_api.LabState, converged: subprocess.CompletedProcess[str]
) -> None:
    result = playbook(lab, "site.yml", "-e", "k8s_binaries_dir=/opt/k8s/bin")
    assert result.returncode == 2, explain(result)
    assert "k8s_binaries_dir is set (/opt/k8s/bin)" in result.stdout
    assert "not supported yet" in result.stdout
    assert "PLAY [Prepare the hosts]" not in result.stdout


def test_reset_refuses_without_confirmation(
    lab: lab_api.LabState, converged: subprocess.CompletedProcess[str], cluster: Cluster
) -> None:
    result = playbook(lab, "reset.yml")
    assert result.returncode != 0, explain(result)
    assert "-e k8s_reset_confirm=yes" in result.stdout
    for host in cluster.etcd:
        assert run_on(lab, host, "systemctl is-active etcd").strip() == "active"


def test_reset_removes_etcd_data_and_configuration_even_with_etcd_down(
    lab: lab_api.LabState, converged: subprocess.CompletedProcess[str], cluster: Cluster
) -> None:
    # One member stopped and with a configuration etcd cannot start with: reset must not care.
    run_on(lab, "node2", "systemctl stop etcd && echo 'ETCD_NAME=' >> /etc/default/etcd")
    result = playbook(lab, "reset.yml", "-e", "k8s_reset_confirm=yes")
    assert result.returncode == 0, explain(result)
    data_dir = render.host_context(cluster, "master")["etcd_data_dir"]
    for host in cluster.hosts:
        if host.is_etcd:
            assert status_on(lab, host.name, "systemctl is-active etcd") != 0
            assert run_on(lab, host.name, "systemctl is-enabled etcd || true").strip() == "disabled"
            assert status_on(lab, host.name, f"test -e {data_dir}") != 0
        for planned in render.planned_files(cluster, host):
            assert status_on(lab, host.name, f"test -e {planned.dest}") != 0, planned.dest
        assert status_on(lab, host.name, "test -e /run/flannel") != 0
        assert "k8s-provision" not in run_on(lab, host.name, "cat /etc/hosts")
    again = playbook(lab, "reset.yml", "-e", "k8s_reset_confirm=yes")
    assert again.returncode == 0, explain(again)
    assert all(c["changed"] == 0 for c in recap(again).values()), explain(again)


def test_site_after_reset_forms_a_fresh_cluster(
    lab: lab_api.LabState, converged: subprocess.CompletedProcess[str], cluster: Cluster
) -> None:
    result = playbook(lab, "site.yml")
    assert result.returncode == 0, explain(result)
    v3 = run_on(lab, "master", "ETCDCTL_API=3 etcdctl endpoint health --cluster 2>&1")
    assert v3.count("is healthy") == len(cluster.etcd), v3
    key = f"{cluster.settings.flannel_etcd_prefix}/config"
    stored = run_on(lab, "node2", f"ETCDCTL_API=2 etcdctl get {key}")
    assert json.loads(stored) == render.flannel_network_config(cluster.settings)
