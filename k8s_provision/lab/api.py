"""The lab's public operations (up, down, status, ssh, power) and the environment checks."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from k8s_provision.errors import OperationFailed, UsageError
from k8s_provision.lab.config import (
    CGROUP_ROOT,
    HostStatus,
    LabConfig,
    LabState,
    LabStatus,
    check_nodes,
    lab_hosts,
    make_config,
    with_host,
)
from k8s_provision.lab.inventory import refresh_hosts_files, write_access_files
from k8s_provision.lab.kubernetes import ensure_binaries, missing_build_tools
from k8s_provision.lab.machines import (
    create_lab,
    leftovers,
    start_hosts,
    stop_host,
    teardown,
    wait_ready,
)
from k8s_provision.lab.network import netns_exists
from k8s_provision.lab.rootfs import ensure_base
from k8s_provision.lab.ssh import ssh_run
from k8s_provision.lab.state import load_state
from k8s_provision.lab.system import Progress, alive, lab_lock, run_state

# Tool → Debian package that provides it, for the fix-it message and --install-deps.
_TOOLS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "nsenter": "util-linux",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "chroot": "coreutils",
    "mount": "mount",
}


def missing_requirements() -> list[str]:
    """What keeps the lab from running here, one sentence each (empty when all is well)."""
    problems = []
    if os.geteuid() != 0:
        problems.append(
            "the lab needs root (network namespaces, mounts, containers): run it with sudo"
        )
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        packages = sorted({_TOOLS[tool] for tool in missing})
        problems.append(
            f"missing {', '.join(missing)} (not on PATH): run "
            f"`apt-get install -y {' '.join(packages)}` (or `k8s-provision lab up --install-deps`)"
        )
    if not (CGROUP_ROOT / "systemd" / "cgroup.procs").exists():
        problems.append(
            f"no cgroup v1 name=systemd hierarchy at {CGROUP_ROOT}/systemd: the lab supports "
            "the hybrid cgroup layout it was proven on"
        )
    filesystems = Path("/proc/filesystems")
    if filesystems.exists() and "overlay" not in filesystems.read_text():
        problems.append("the kernel has no overlay filesystem: load it with `modprobe overlay`")
    return problems


def require_environment() -> None:
    problems = missing_requirements()
    if problems:
        raise UsageError("the lab cannot run on this machine", details=problems)


def install_dependencies(*, kubernetes: bool = True) -> None:
    """apt-get the packages that provide the missing tools (the `--install-deps` option),
    including what the Kubernetes build needs when `kubernetes`."""
    if os.geteuid() != 0:
        raise UsageError("--install-deps needs root: run it with sudo")
    packages = sorted({_TOOLS[tool] for tool in _TOOLS if shutil.which(tool) is None})
    if kubernetes:
        packages += missing_build_tools()
    if not packages:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise OperationFailed(
                f"`{shlex.join(argv)}` exited {result.returncode}",
                details=result.stderr.strip().splitlines()[-10:],
            )


def up(
    nodes: int = 2,
    *,
    config: LabConfig | None = None,
    install_deps: bool = False,
    kubernetes: bool = True,
    security: str = "tls",
) -> LabState:
    """Start the lab, or bring a running one to `nodes` nodes. A running lab is left alone (a
    quick no-op); missing, dead or powered-off hosts are (re)started; nodes are never removed.
    State left by a lab whose network is gone (a machine reboot) is cleaned up first. With
    `kubernetes` a new lab's hosts get the Kubernetes server binaries (built once, cached).
    `security` is a new lab's k8s_security (tls or classic); a running lab keeps its own."""
    cfg = config or make_config()
    check_nodes(nodes)
    if install_deps:
        install_dependencies(kubernetes=kubernetes)
    require_environment()
    progress = Progress()
    with lab_lock(cfg, progress):
        state = load_state(cfg)
        if (state is not None and not netns_exists(cfg.net_ns)) or (
            state is None and leftovers(cfg)
        ):
            progress.note(f"lab {cfg.name}: cleaning up stale state (lab network or state gone)")
            teardown(cfg, state)
            state = None
        if state is None:
            base = ensure_base(cfg.cache_dir, progress)
            binaries = ensure_binaries(cfg.cache_dir, progress) if kubernetes else None
            state = create_lab(cfg, base, binaries, progress, security=security)
        wanted = lab_hosts(max(nodes, state.node_count))
        to_start = [
            (name, address)
            for name, address in wanted
            if (host := state.find(name)) is None or not alive(host)
        ]
        added = any(state.find(name) is None for name, _ in to_start)
        if to_start:
            with progress.step(f"starting {', '.join(name for name, _ in to_start)}"):
                for name, _ in to_start:
                    if (stale := state.find(name)) is not None:
                        state = with_host(state, stop_host(cfg, stale))
                state = start_hosts(cfg, state, to_start, progress)
        if added:
            refresh_hosts_files(cfg, state)
        write_access_files(cfg, state)
        if state.kubernetes is not None:
            _ensure_lab_pki(cfg, progress)
        if to_start:
            wait_ready(cfg, state, [name for name, _ in to_start], progress)
        if added and state.kubernetes is not None:
            _apply_pod_routes(cfg, state, [name for name, _ in to_start])
        return state


def _apply_pod_routes(cfg: LabConfig, state: LabState, started: Sequence[str]) -> None:
    """Hosts that were already running route to the new nodes' pod subnets too."""
    for host in state.hosts:
        if host.name not in started:
            unit = "k8s-provision-lab-routes.service"
            ssh_run(host.name, ["systemctl", "restart", unit], config=cfg, check=True)


def _ensure_lab_pki(cfg: LabConfig, progress: Progress) -> None:
    """Certificates for the hosts in the lab inventory (its kube_pki_source): made once, and
    for a host that joined, made for it too."""
    # Imported here: ansible-core loads only for a lab with Kubernetes, never for `lab --help`.
    from k8s_provision import inventory, pki

    with progress.step("making the lab's cluster certificates"):
        pki.ensure_pki(inventory.load(cfg.inventory), cfg.pki_dir)


def down(*, config: LabConfig | None = None) -> None:
    """Stop everything the lab started (by PID), unmount, remove namespaces, cgroups and state.
    Safe to run on a lab that is half up, stale, or gone."""
    cfg = config or make_config()
    if os.geteuid() != 0:
        raise UsageError("lab down needs root: run it with sudo")
    progress = Progress()
    with lab_lock(cfg, progress):
        state = load_state(cfg)
        if state is None and not leftovers(cfg) and not cfg.state_dir.exists():
            return
        with progress.step(f"stopping lab {cfg.name}"):
            teardown(cfg, state)


def status(*, config: LabConfig | None = None) -> LabStatus:
    cfg = config or make_config()
    state = load_state(cfg)
    if state is None:
        return LabStatus(name=cfg.name, state_dir=cfg.state_dir, up=False, hosts=())
    network = netns_exists(cfg.net_ns)
    hosts = tuple(
        HostStatus(h.name, h.address, run_state(h) if network else "dead", h.pid)
        for h in state.hosts
    )
    return LabStatus(name=cfg.name, state_dir=cfg.state_dir, up=network, hosts=hosts)


def inventory_path(*, config: LabConfig | None = None) -> Path:
    cfg = config or make_config()
    if not cfg.inventory.exists() or load_state(cfg) is None:
        raise UsageError(f"lab {cfg.name} is not up: run `k8s-provision lab up` first")
    return cfg.inventory


def build_kubernetes(*, config: LabConfig | None = None) -> Path:
    """The cached Kubernetes server binaries' directory, built first when missing."""
    cfg = config or make_config()
    return ensure_binaries(cfg.cache_dir, Progress())
