"""The lab itself: hosts reachable with plain ansible/ssh/paramiko from the machine's own netns,
booted cleanly, distinct, isolated; `up` idempotent and growing in place; power off/on of one
host; stale state recovered; `down` leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest

from k8s_provision import lab as lab_api
from k8s_provision.lab import network, system
from tests.lab import hosts

pytestmark = pytest.mark.lab

HOSTS = ("master", "node1", "node2")
VENV_BIN = Path(sys.executable).parent


def pids(state: lab_api.LabState) -> dict[str, int | None]:
    return {host.name: host.pid for host in state.hosts}


def run_on(config: lab_api.LabConfig, host: str, command: str) -> str:
    return lab_api.ssh_run(host, command, config=config, check=True).stdout.strip()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from k8s_provision.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# --- the session lab -----------------------------------------------------------------------


def test_every_host_answers_ansible_ping_from_the_machines_netns(
    lab: lab_api.LabState, tmp_path: Path
) -> None:
    # The machine's own netns has no route to the lab subnet: the ProxyCommand is the way in.
    routes = subprocess.run(
        ["ip", "route", "show", str(lab_api.SUBNET)], capture_output=True, text=True, check=True
    )
    assert routes.stdout.strip() == ""
    # A neutral working directory: this proves the inventory alone is enough.
    result = subprocess.run(
        [str(VENV_BIN / "ansible"), "-i", str(lab.inventory), "all", "-m", "ping"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for host in HOSTS:
        assert f"{host} | SUCCESS" in result.stdout


def test_systemd_is_running_on_each_host(lab: lab_api.LabState) -> None:
    for host in HOSTS:
        assert run_on(lab.config, host, "systemctl is-system-running") == "running"


def test_hosts_have_distinct_identities_and_pinned_host_keys(lab: lab_api.LabState) -> None:
    machine_ids = {run_on(lab.config, h, "cat /etc/machine-id") for h in HOSTS}
    assert len(machine_ids) == len(HOSTS)
    keys = [
        run_on(lab.config, h, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()[1] for h in HOSTS
    ]
    assert len(set(keys)) == len(HOSTS)
    known_hosts = lab.config.known_hosts.read_text()
    for host, key in zip(HOSTS, keys, strict=True):
        assert f"{host},{lab.host(host).address} ssh-ed25519 {key}" in known_hosts
    assert [run_on(lab.config, h, "hostname") for h in HOSTS] == list(HOSTS)
    # As on CentOS 7, sshd runs no motd scripts per session (the base image's file has them).
    assert "pam_motd" in (lab.base / "etc/pam.d/sshd").read_text()
    assert (
        run_on(lab.config, "node1", "grep -c '^session.*pam_motd' /etc/pam.d/sshd || true") == "0"
    )


def test_hosts_see_each_other_but_not_the_outside(lab: lab_api.LabState) -> None:
    assert run_on(lab.config, "node1", "ping -c1 -W2 node2 >/dev/null && echo ok") == "ok"
    outside = lab_api.ssh_run("master", "curl -sS -m 3 http://1.1.1.1/", config=lab.config)
    assert outside.returncode != 0
    assert run_on(lab.config, "master", "python3 -c 'import apt; print(1)'") == "1"
    assert "Client Version" in run_on(lab.config, "master", "kubectl version --client")


def test_base_image_is_generic(lab: lab_api.LabState) -> None:
    # Checked in the image, not on hosts: other lab tests may converge the session lab.
    base = lab.base
    assert not list((base / "etc/ssh").glob("ssh_host_*"))
    assert (base / "etc/machine-id").read_text() == ""
    assert "nameserver" not in (base / "etc/resolv.conf").read_text()
    assert not (base / "etc/systemd/system/multi-user.target.wants/etcd.service").exists()
    assert not (base / "root/.ssh/authorized_keys").exists()


def test_paramiko_uses_the_inventory_proxycommand(lab: lab_api.LabState) -> None:
    address = lab.host("node2").address
    proxy = lab_api.proxy_command(lab.config).replace("%h", address).replace("%p", "22")
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.config.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            address,
            username="root",
            key_filename=str(lab.config.key),
            sock=paramiko.ProxyCommand(proxy),
            timeout=30,
            allow_agent=False,
            look_for_keys=False,
        )
        _, stdout, _ = client.exec_command("hostname")
        assert stdout.read().decode().strip() == "node2"
    finally:
        client.close()


def test_plain_ssh_with_the_lab_ssh_config(lab: lab_api.LabState) -> None:
    result = subprocess.run(
        ["ssh", "-F", str(lab.config.ssh_config), "node1", "hostname"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "node1"), result.stderr


def test_up_again_is_a_quick_noop(lab: lab_api.LabState) -> None:
    before = pids(lab)
    started = time.monotonic()
    again = lab_api.up(nodes=2, config=lab.config, kubernetes=False, security="classic")
    assert time.monotonic() - started < 5
    assert pids(again) == before


def test_cli_status_inventory_and_ssh(lab: lab_api.LabState) -> None:
    # The fixture exported K8S_PROVISION_LAB_NAME: the CLI acts on the test lab.
    status = cli("lab", "status")
    assert status.returncode == 0, status.stderr
    for host in lab.hosts:
        assert f"{host.address}  running" in status.stdout
    inventory = cli("lab", "inventory")
    assert inventory.stdout.strip().splitlines()[-1] == str(lab.inventory)
    ssh = cli("lab", "ssh", "master", "--", "sh", "-c", "hostname; exit 3")
    assert (ssh.returncode, ssh.stdout.strip()) == (3, "master")
    unknown = cli("lab", "ssh", "node9", "--", "true")
    assert unknown.returncode == 2
    assert "no host 'node9'" in unknown.stderr


# --- a spare lab: grow, power cycle, stale state, down --------------------------------------


def test_grow_power_cycle_and_down_leave_nothing(spare_lab_config: lab_api.LabConfig) -> None:
    cfg = spare_lab_config
    state = lab_api.up(nodes=2, config=cfg, kubernetes=False, security="classic")
    before = pids(state)

    grown = lab_api.up(nodes=3, config=cfg, kubernetes=False, security="classic")
    assert {h: p for h, p in pids(grown).items() if h != "node3"} == before
    assert run_on(cfg, "master", "getent hosts node3").split() == ["192.168.10.4", "node3"]
    assert "node3 ansible_host=192.168.10.4" in cfg.inventory.read_text()
    assert run_on(cfg, "node3", "systemctl is-system-running") == "running"

    # Power off one host: the others keep running; it comes back with its own disk.
    identity = run_on(cfg, "node1", "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub")
    off = hosts.power_off("node1", config=cfg)
    states = {h.name: h.state for h in lab_api.status(config=cfg).hosts}
    assert states == {"master": "running", "node1": "off", "node2": "running", "node3": "running"}
    assert run_on(cfg, "master", "ping -c1 -W1 node1 >/dev/null || echo down") == "down"
    on = hosts.power_on("node1", config=cfg)
    assert run_on(cfg, "node1", "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub") == identity
    unchanged = {h: p for h, p in pids(on).items() if h != "node1"}
    assert unchanged == {h: p for h, p in pids(off).items() if h != "node1"}

    # A host that died on its own is seen as dead and restarted by `up`; the rest untouched.
    node2 = on.host("node2")
    assert node2.pid is not None
    os.kill(node2.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while lab_api.status(config=cfg).hosts[2].state != "dead" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lab_api.status(config=cfg).hosts[2].state == "dead"
    healed = lab_api.up(config=cfg, kubernetes=False, security="classic")
    assert pids(healed)["node2"] != node2.pid
    assert {h: p for h, p in pids(healed).items() if h != "node2"} == {
        h: p for h, p in pids(on).items() if h != "node2"
    }
    assert run_on(cfg, "node2", "systemctl is-system-running") == "running"

    # Ansible's own ControlPersist masters (outside the lab dir) must not outlive the lab.
    ping = subprocess.run(
        [str(VENV_BIN / "ansible"), "-i", str(cfg.inventory), "all", "-m", "ping"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    # Keep a handle on the lab netns to find its processes after its name is gone.
    netns_fd = os.open(lab_api.NETNS_DIR / cfg.net_ns, os.O_RDONLY)
    netns = Path(f"/proc/self/fd/{netns_fd}")
    assert processes_in_netns(netns)  # the relays of ansible's ControlPersist masters

    lab_api.down(config=cfg)
    assert lab_leftovers(cfg, [*healed.hosts, node2]) == []
    try:
        assert processes_in_netns(netns) == set()
    finally:
        os.close(netns_fd)
    assert lab_api.status(config=cfg).up is False


def test_stale_state_after_a_reboot_is_cleaned_up(spare_lab_config: lab_api.LabConfig) -> None:
    cfg = spare_lab_config
    state = lab_api.up(nodes=1, config=cfg, kubernetes=False, security="classic")
    old_id = run_on(cfg, "node1", "cat /etc/machine-id")
    simulate_reboot(cfg, state)
    assert lab_api.status(config=cfg).up is False
    assert {h.state for h in lab_api.status(config=cfg).hosts} == {"dead"}

    fresh = lab_api.up(nodes=1, config=cfg, kubernetes=False, security="classic")
    assert [h.name for h in fresh.hosts] == ["master", "node1"]
    assert run_on(cfg, "node1", "systemctl is-system-running") == "running"
    assert run_on(cfg, "node1", "cat /etc/machine-id") != old_id
    lab_api.down(config=cfg)
    assert lab_leftovers(cfg, list(fresh.hosts)) == []


def simulate_reboot(cfg: lab_api.LabConfig, state: lab_api.LabState) -> None:
    """What a machine reboot does to a running lab: processes, mounts, namespaces and cgroups
    vanish; the state directory on disk stays and claims the hosts are running."""
    subprocess.run(
        ["ssh", "-F", str(cfg.ssh_config), "-O", "exit", "master"], capture_output=True, check=False
    )
    for host in state.hosts:
        assert host.pid is not None
        os.kill(host.pid, signal.SIGKILL)
    for host in state.hosts:
        for _ in range(100):
            if system.process_start_time(host.pid or 0) is None:
                break
            system.reap(host.pid or 0)
            time.sleep(0.05)
        for cgroup in host.cgroups:
            system.kill_cgroup(Path(cgroup))
            system.remove_cgroup(Path(cgroup))
        subprocess.run(["umount", str(cfg.host_root(host.name))], check=True)
        subprocess.run(["ip", "netns", "delete", cfg.host_ns(host.name)], check=True)
    network.kill_relays(cfg)
    subprocess.run(["ip", "netns", "delete", cfg.net_ns], check=True)


def processes_in_netns(netns: Path) -> set[int]:
    """PIDs of live processes whose network namespace is `netns` (by inode: it stays valid
    after the namespace's name is deleted)."""
    target = os.stat(netns)
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            ns = os.stat(proc / "ns/net")
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError, PermissionError):
            continue
        if (ns.st_dev, ns.st_ino) == (target.st_dev, target.st_ino):
            found.add(int(proc.name))
    return {pid for pid in found if system.process_start_time(pid) is not None}


def lab_leftovers(config: lab_api.LabConfig, hosts: list[lab_api.HostState]) -> list[str]:
    """Everything of a lab still present on the machine; empty after a clean `down`."""
    found = [
        f"netns {p.name}"
        for p in lab_api.NETNS_DIR.iterdir()
        if p.name.startswith(config.name + "-")
    ]
    prefix = str(config.state_dir) + "/"
    found += [
        f"mount {line.split()[1]}"
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1].startswith(prefix)
    ]
    for hierarchy in ("systemd", "unified"):
        cgroup = lab_api.CGROUP_ROOT / hierarchy / config.name
        if cgroup.exists():
            found.append(f"cgroup {cgroup}")
    found += [f"process {h.pid} ({h.name})" for h in hosts if system.alive(h)]
    if config.state_dir.exists():
        found.append(f"state dir {config.state_dir}")
    return found
