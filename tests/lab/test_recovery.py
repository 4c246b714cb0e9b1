"""Runs that stop half-way heal on the next run, on the lab with real etcd and real kills: a
service that runs with an older configuration than its files on disk is found by verify
(config:stale) and restarted by the next run, exactly that one; the CLI killed between a config
change and its restart leaves no playbook running and heals with one `up`; two `up` runs
started together do not both run. A key written before each fault is still there after."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s_provision import inventory, service_state, verify
from k8s_provision import lab as lab_api
from k8s_provision.model import Cluster
from tests.lab.hosts import power_off, power_on, run_site

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent.parent
CLI = str(Path(sys.executable).parent / "k8s-provision")
KEY = "/k8sp-fault/kept"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=900, check=False, cwd=REPO
    )


def on(lab: lab_api.LabState, host: str, command: str) -> str:
    return lab_api.ssh_run(host, command, config=lab.config, check=True).stdout.strip()


def put_key(lab: lab_api.LabState, value: str) -> None:
    on(lab, "master", f"ETCDCTL_API=3 etcdctl put {KEY} {value}")


def key_on_every_member(lab: lab_api.LabState, cluster: Cluster) -> set[str]:
    return {on(lab, h, f"ETCDCTL_API=3 etcdctl get --print-value-only {KEY}") for h in cluster.etcd}


def with_token(lab: lab_api.LabState, tmp_path: Path, token: str) -> Path:
    """The lab inventory with another etcd cluster token: etcd's file changes, and a
    bootstrapped member ignores the token, so the restart it needs is harmless."""
    path = tmp_path / "inventory.ini"
    path.write_text(lab.inventory.read_text() + f"etcd_cluster_token={token}\n")
    return path


def running_with(word: str) -> list[int]:
    """Live processes whose command line holds `word`: ansible-playbook and the workers it
    forked carry the inventory path."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if word in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


def site(lab: lab_api.LabState) -> subprocess.CompletedProcess[str]:
    return run_site(lab)


def etcd_pid(lab: lab_api.LabState, host: str) -> str:
    return lab_api.ssh_run(
        host, "systemctl show -p MainPID --value etcd", config=lab.config, check=True
    ).stdout.strip()


def test_a_service_older_than_its_config_is_reported_and_restarted_alone(
    converged_lab: lab_api.LabState, cluster: Cluster
) -> None:
    lab = converged_lab
    before = {h: etcd_pid(lab, h) for h in cluster.etcd}
    # What a run stopped between writing etcd's file and restarting etcd leaves: the file
    # is right, etcd was started with other bytes.
    lab_api.ssh_run(
        "node1",
        f"echo {'0' * 64} > {service_state.APPLIED_DIR}/etcd",
        config=lab.config,
        check=True,
    )
    report = verify.verify(cluster)
    stale = [c for c in report.checks if c.check == "config:stale" and c.status == "fail"]
    assert [c.host for c in stale] == ["node1"], report.checks
    assert "etcd (reads /etc/default/etcd)" in stale[0].detail

    site(lab)
    after = {h: etcd_pid(lab, h) for h in cluster.etcd}
    assert after["node1"] != before["node1"]
    assert {h: p for h, p in after.items() if h != "node1"} == {
        h: p for h, p in before.items() if h != "node1"
    }
    assert verify.verify(cluster).ok
    changed = re.findall(r"^\S+\s*:\s*ok=\d+\s+changed=(\d+)", site(lab).stdout, re.MULTILINE)
    assert changed and set(changed) == {"0"}


def test_records_of_the_older_form_are_read_and_replaced_without_a_restart(
    converged_lab: lab_api.LabState, cluster: Cluster
) -> None:
    """A cluster converged by an earlier version holds, per unit, the SHA-256 of its files'
    bytes run together: verify passes on it, and the next run replaces each record without
    restarting anything."""
    lab = converged_lab
    before = {h: etcd_pid(lab, h) for h in cluster.etcd}
    for name in cluster.etcd:
        paths = " ".join(service_state.host_unit_paths(cluster, cluster.host(name))["etcd"])
        on(
            lab,
            name,
            f"cat -- {paths} | sha256sum | cut -d' ' -f1 > {service_state.APPLIED_DIR}/etcd",
        )
    assert verify.verify(cluster).ok
    run = site(lab)
    changed = dict(re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)", run.stdout, re.MULTILINE))
    # The record is the one change, on each etcd member.
    assert changed == {h.name: "1" if h.is_etcd else "0" for h in cluster.hosts}, run.stdout
    assert {h: etcd_pid(lab, h) for h in cluster.etcd} == before
    for name in cluster.etcd:
        record = on(lab, name, f"cat {service_state.APPLIED_DIR}/etcd")
        assert record.startswith(service_state.RECORD_PREFIX)
    assert verify.verify(cluster).ok


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_cli_killed_between_a_config_change_and_its_restart_heals_with_one_up(
    converged_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path, signum: int
) -> None:
    lab = converged_lab
    put_key(lab, f"before-{signum}")
    token = f"fault-{signum}-{time.monotonic_ns()}"
    edited = with_token(lab, tmp_path, token)
    run = subprocess.Popen(
        [CLI, "up", str(edited)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    deadline = time.monotonic() + 600
    while token not in on(lab, "master", "cat /etc/default/etcd"):
        assert run.poll() is None, run.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "site.yml never wrote etcd's new file"
        time.sleep(0.2)
    run.send_signal(signum)
    output = run.communicate(timeout=60)[0]
    if signum == signal.SIGTERM:
        assert run.returncode == 128 + signum, output[-3000:]
    deadline = time.monotonic() + 30
    while running_with(str(edited)):
        assert time.monotonic() < deadline, f"still running: {running_with(str(edited))}"
        time.sleep(0.5)

    edited_cluster = inventory.load(edited)
    report = verify.verify(edited_cluster)
    stale = [c.host for c in report.checks if c.check == "config:stale" and c.status == "fail"]
    assert stale, report.checks

    healed = cli("up", str(edited))
    assert healed.returncode == 0, healed.stdout[-3000:] + healed.stderr[-2000:]
    assert verify.verify(edited_cluster).ok
    assert key_on_every_member(lab, cluster) == {f"before-{signum}"}
    # back to the lab's own inventory for the tests after this one
    assert cli("up", str(lab.inventory)).returncode == 0


def test_two_up_runs_started_together_do_not_both_run(
    converged_lab: lab_api.LabState, cluster: Cluster
) -> None:
    lab = converged_lab
    put_key(lab, "before-two-runs")
    runs = [
        subprocess.Popen(
            [CLI, "up", str(lab.inventory)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(2)
    ]
    results = [(r.wait(timeout=900), *r.communicate()) for r in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    refused = next(err for code, _, err in results if code == 1)
    assert "the cluster is busy: up by " in refused and "holds its lock on master" in refused
    assert verify.verify(cluster).ok
    assert key_on_every_member(lab, cluster) == {"before-two-runs"}


def kill_when(lab: lab_api.LabState, inventory_path: Path, probe: str) -> None:
    """Start `up`, SIGKILL the CLI as soon as `probe` succeeds on the master, and wait until
    nothing of that run is left."""
    run = subprocess.Popen(
        [CLI, "up", str(inventory_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    deadline = time.monotonic() + 600
    while lab_api.ssh_run("master", probe, config=lab.config).returncode != 0:
        assert run.poll() is None, run.communicate()[0][-3000:]
        assert time.monotonic() < deadline, f"never true: {probe}"
        time.sleep(0.2)
    run.kill()
    run.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while running_with(str(inventory_path)):
        assert time.monotonic() < deadline, f"still running: {running_with(str(inventory_path))}"
        time.sleep(0.5)


def test_cli_killed_before_etcd_starts_heals_with_one_up(
    converged_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    lab = converged_lab
    put_key(lab, "before-etcd-start")
    on(lab, "node2", "systemctl stop etcd")
    # A copy of the inventory, so the processes of this run are told apart by its path.
    copy = tmp_path / "inventory.ini"
    copy.write_text(lab.inventory.read_text())
    kill_when(lab, copy, "test -e /var/lib/k8s-provision/lock")
    assert on(lab, "node2", "systemctl is-active etcd || true") != "active"
    # The killed run's lock names a pid that is gone on this controller: taken over at once.
    healed = cli("up", str(copy))
    assert healed.returncode == 0, healed.stdout[-3000:] + healed.stderr[-2000:]
    assert "taking over the stale lock" in healed.stdout
    assert verify.verify(cluster).ok
    assert key_on_every_member(lab, cluster) == {"before-etcd-start"}


def test_cli_killed_while_the_flannel_key_is_written_heals_with_one_up(
    converged_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    lab = converged_lab
    put_key(lab, "before-flannel-key")
    network = "/atomic.io/network/config"
    on(lab, "master", f"ETCDCTL_API=2 etcdctl rm {network}")
    copy = tmp_path / "inventory.ini"
    copy.write_text(lab.inventory.read_text())
    kill_when(lab, copy, f"ETCDCTL_API=2 etcdctl get {network}")
    healed = cli("up", str(copy))
    assert healed.returncode == 0, healed.stdout[-3000:] + healed.stderr[-2000:]
    assert verify.verify(cluster).ok
    assert key_on_every_member(lab, cluster) == {"before-flannel-key"}


@pytest.fixture(scope="module")
def own_lab(lab_name: str) -> Iterator[lab_api.LabState]:
    """A lab of this module's own, which the tests below power-cycle, then grow (never the
    session lab's). The second starts any host left off and runs `up` first: it does not
    depend on how the first ended."""
    config = lab_api.make_config(lab_name + "r")
    lab_api.down(config=config)
    try:
        yield lab_api.up(nodes=2, config=config, kubernetes=False, security="classic")
    finally:
        lab_api.down(config=config)


def test_a_node_powered_off_mid_run_and_back_on_heals_with_one_up(
    own_lab: lab_api.LabState,
) -> None:
    state = own_lab
    first = cli("up", str(state.inventory))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    spare = inventory.load(state.inventory)
    put_key(state, "before-power-off")
    run = subprocess.Popen(
        [CLI, "up", str(state.inventory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    deadline = time.monotonic() + 600
    lock_probe = "test -e /var/lib/k8s-provision/lock"
    while lab_api.ssh_run("master", lock_probe, config=state.config).returncode != 0:
        assert run.poll() is None, run.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the run never took the lock"
        time.sleep(0.2)
    power_off("node2", config=state.config)
    output = run.communicate(timeout=900)[0]
    assert run.returncode == 1, output[-3000:]
    assert "node2" in output

    power_on("node2", config=state.config)
    healed = cli("up", str(state.inventory))
    assert healed.returncode == 0, healed.stdout[-3000:] + healed.stderr[-2000:]
    assert verify.verify(spare).ok
    assert key_on_every_member(state, spare) == {"before-power-off"}


def test_etcd_killed_on_a_member_during_add_node_heals_with_one_up(
    own_lab: lab_api.LabState, tmp_path: Path
) -> None:
    state = lab_api.up(nodes=2, config=own_lab.config, kubernetes=False, security="classic")
    first = cli("up", str(state.inventory))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    put_key(state, "before-add-node")
    state = lab_api.up(nodes=4, config=own_lab.config, kubernetes=False, security="classic")
    five = tmp_path / "five.ini"
    five.write_text(state.inventory.read_text().replace("[etcd]\n", "[etcd]\nnode3\nnode4\n"))
    run = subprocess.Popen(
        [CLI, "add-node", str(five), "node3", "node4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    deadline = time.monotonic() + 900
    joined = "systemctl is-active --quiet etcd"
    while lab_api.ssh_run("node3", joined, config=state.config).returncode != 0:
        assert run.poll() is None, run.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "node3 never started etcd"
        time.sleep(0.2)
    on(state, "node1", "systemctl kill --signal=KILL etcd")
    run.communicate(timeout=900)  # it may fail or ride it out; the next run must heal

    again = cli("up", str(five))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    grown = inventory.load(five)
    assert verify.verify(grown).ok
    assert key_on_every_member(state, grown) == {"before-add-node"}
    listed = on(state, "master", "ETCDCTL_API=3 etcdctl member list")
    assert len(listed.splitlines()) == 5, listed


def test_an_etcd_member_cut_off_with_iptables_mid_run_heals_with_one_up(
    converged_lab: lab_api.LabState, cluster: Cluster, tmp_path: Path
) -> None:
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed on this machine: apt-get install iptables")
    lab = converged_lab
    put_key(lab, "before-cut")
    copy = tmp_path / "inventory.ini"
    copy.write_text(lab.inventory.read_text())
    # node2's own network namespace, seen from this machine: SSH stays up, etcd's ports go.
    netns = ["nsenter", f"--net=/run/netns/{lab.config.host_ns('node2')}", "iptables"]
    ports = ["-p", "tcp", "-m", "multiport", "--dports", "2379,2380", "-j", "DROP"]
    run = subprocess.Popen(
        [CLI, "up", str(copy)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 600
        lock_probe = "test -e /var/lib/k8s-provision/lock"
        while lab_api.ssh_run("master", lock_probe, config=lab.config).returncode != 0:
            assert run.poll() is None, run.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the run never took the lock"
            time.sleep(0.2)
        subprocess.run([*netns, "-A", "INPUT", "-i", "eth0", *ports], check=True)
        subprocess.run([*netns, "-A", "OUTPUT", "-o", "eth0", *ports], check=True)
        run.communicate(timeout=900)  # it may fail on node2 or ride it out
    finally:
        subprocess.run([*netns, "-F"], check=True)
    healed = cli("up", str(copy))
    assert healed.returncode == 0, healed.stdout[-3000:] + healed.stderr[-2000:]
    assert verify.verify(cluster).ok
    assert key_on_every_member(lab, cluster) == {"before-cut"}
