"""Lab hosts as machines: prepare the overlay root, join cgroups, boot systemd-nspawn in the
host's namespace, wait for sshd, stop and tear down."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from k8s_provision.errors import OperationFailed, UsageError
from k8s_provision.lab.config import (
    BRIDGE_ADDRESS,
    CGROUP_ROOT,
    NETNS_DIR,
    SUBNET,
    HostState,
    LabConfig,
    LabState,
    host_order,
    with_host,
)
from k8s_provision.lab.inventory import hosts_file_text
from k8s_provision.lab.kubehost import install_kubernetes, nspawn_options
from k8s_provision.lab.network import (
    close_ssh_masters,
    create_host_network,
    kill_relays,
    netns_exists,
    ssh_banner,
)
from k8s_provision.lab.ssh import ssh_run
from k8s_provision.lab.state import save_state
from k8s_provision.lab.system import (
    Progress,
    alive,
    is_mounted,
    kill_cgroup,
    mount_points,
    process_start_time,
    remove_cgroup,
    remove_tree,
    run,
    tail,
    terminate,
    umount,
    write_file,
)

_READY_TIMEOUT = 90.0


# Each lab host's systemd, journald, logind and dbus hold inotify instances, all counted against
# root: the kernel default of 128 runs out at about 15 hosts on the machine (every lab counts),
# and then units such as systemd-ask-password-*.path fail at boot.
_INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")


_MIN_INOTIFY_INSTANCES = 1024


# The launcher joins the lab's cgroups before it becomes systemd-nspawn, so each host gets its
# own cgroup subtree (otherwise all hosts share one at the cgroup root). Paths come in as
# positional arguments, never as shell text.
# The v1 controllers besides memory a pod-running host gets its own subtree in.
_POD_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "pids", "devices", "freezer", "blkio")

_JOIN_CGROUPS_AND_EXEC = (
    'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
)


def create_lab(
    cfg: LabConfig,
    base: Path,
    kubernetes: Path | None,
    progress: Progress,
    *,
    security: str = "tls",
) -> LabState:
    with progress.step(f"creating lab network {cfg.net_ns}"):
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        cfg.control_dir.mkdir(mode=0o700, exist_ok=True)
        if not cfg.key.exists():
            comment = f"k8s-provision lab {cfg.name}"
            run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(cfg.key)],
                "ssh-keygen for the lab key",
            )
        cfg.key.chmod(0o600)
        state = LabState(config=cfg, base=base, hosts=(), kubernetes=kubernetes, security=security)
        save_state(state)
        ns = cfg.net_ns
        run(["ip", "netns", "add", ns], f"create netns {ns}")
        for args in (
            ["link", "set", "lo", "up"],
            ["link", "add", "br0", "type", "bridge"],
            ["addr", "add", f"{BRIDGE_ADDRESS}/{SUBNET.prefixlen}", "dev", "br0"],
            ["link", "set", "br0", "up"],
        ):
            run(["ip", "-n", ns, *args], f"set up the lab bridge in {ns}")
        return state


def start_hosts(
    cfg: LabConfig, state: LabState, hosts: Sequence[tuple[str, str]], progress: Progress
) -> LabState:
    """Create the hosts' networks and disks (in parallel: host key generation dominates), then
    launch each container in the background. The state is saved after each launch, and a half
    prepared host is found by name, so `down` can always clean up."""
    _ensure_inotify_instances(progress)
    everyone = {(h.name, h.address) for h in state.hosts} | set(hosts)
    hosts_file = sorted(everyone, key=host_order)
    with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
        list(pool.map(lambda h: _prepare_host(cfg, state, h[0], h[1], hosts_file), hosts))
    for name, address in hosts:
        cgroups = _create_cgroups(cfg.name, name, all_controllers=state.kubernetes is not None)
        pid = _launch(cfg, name, cfg.host_root(name), cgroups, state.kubernetes)
        host = HostState(
            name, address, pid, process_start_time(pid), tuple(str(c) for c in cgroups)
        )
        state = with_host(state, host)
        save_state(state)
    return state


def _ensure_inotify_instances(progress: Progress) -> None:
    """Raise the machine's inotify instance limit when it is below what several labs need (it
    only lifts a ceiling; nothing else changes)."""
    current = int(_INOTIFY_INSTANCES.read_text())
    if current >= _MIN_INOTIFY_INSTANCES:
        return
    try:
        _INOTIFY_INSTANCES.write_text(f"{_MIN_INOTIFY_INSTANCES}\n")
    except OSError as err:
        raise UsageError(
            f"fs.inotify.max_user_instances is {current}: too low for lab hosts (each uses "
            f"about 8); run `sysctl -w fs.inotify.max_user_instances={_MIN_INOTIFY_INSTANCES}`"
        ) from err
    progress.note(
        f"raised fs.inotify.max_user_instances from {current} to {_MIN_INOTIFY_INSTANCES}: "
        "each lab host's systemd uses about 8"
    )


def _prepare_host(
    cfg: LabConfig, state: LabState, name: str, address: str, hosts: Sequence[tuple[str, str]]
) -> None:
    host_dir = cfg.host_dir(name)
    for sub in ("upper", "work", "root"):
        (host_dir / sub).mkdir(parents=True, exist_ok=True)
    create_host_network(cfg, name, address)
    root = cfg.host_root(name)
    if not is_mounted(root):
        upper, work = host_dir / "upper", host_dir / "work"
        options = f"lowerdir={state.base},upperdir={upper},workdir={work}"
        run(["mount", "-t", "overlay", "overlay", "-o", options, str(root)], f"mount {name} disk")
    _prepare_root(cfg, root, name, hosts)
    if state.kubernetes is not None:
        install_kubernetes(root, name, address, hosts)


def _prepare_root(cfg: LabConfig, root: Path, name: str, hosts: Sequence[tuple[str, str]]) -> None:
    machine_id = root / "etc/machine-id"
    if not machine_id.read_text().strip():
        write_file(machine_id, uuid.uuid4().hex + "\n")
    write_file(root / "etc/hostname", name + "\n")
    write_file(root / "etc/hosts", hosts_file_text(hosts))
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    pubkey = Path(f"{cfg.key}.pub").read_text()
    write_file(ssh_dir / "authorized_keys", pubkey, mode=0o600)
    # Generates only the keys that are missing: a host keeps its keys across power cycles.
    run(["chroot", str(root), "ssh-keygen", "-A"], f"generate {name}'s SSH host keys")
    # Debian's sshd runs the update-motd scripts on every session, a third of what a
    # connection costs the host; CentOS 7's sshd PAM stack has no pam_motd.
    pam = root / "etc/pam.d/sshd"
    lines = pam.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not re.match(r"session\s+optional\s+pam_motd\.so", line)]
    if kept != lines:
        write_file(pam, "".join(kept))


def _create_cgroups(lab: str, host: str, *, all_controllers: bool = False) -> list[Path]:
    """The host's cgroups. With `all_controllers` (a host that runs pods) it gets its own
    subtree in every v1 controller too: the kubelet creates its `kubepods` there, and two
    nodes sharing a controller's root would manage each other's pods."""
    dirs = [CGROUP_ROOT / "systemd" / lab / host]
    if (CGROUP_ROOT / "unified" / "cgroup.procs").exists():
        dirs.append(CGROUP_ROOT / "unified" / lab / host)
    controllers = ["memory", *(_POD_CONTROLLERS if all_controllers else ())]
    for controller in controllers:
        own = _own_cgroup(controller)
        if own is not None and (CGROUP_ROOT / controller / "cgroup.procs").exists():
            # A child of our own cgroup: the machine may account and limit us there.
            dirs.append(CGROUP_ROOT / controller / own.lstrip("/") / lab / host)
    for path in dirs:
        _mkdir_cgroup(path)
    return dirs


def _mkdir_cgroup(path: Path) -> None:
    """mkdir -p; a new cpuset cgroup starts with no CPUs or memory nodes, and a process can
    join it only once they are copied from its parent."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        directory.mkdir()
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (directory / name).exists():
                (directory / name).write_text((directory.parent / name).read_text())


def _own_cgroup(controller: str) -> str | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return None


def _launch(
    cfg: LabConfig, name: str, root: Path, cgroups: Sequence[Path], kubernetes: Path | None
) -> int:
    extra = nspawn_options(cfg, name, kubernetes) if kubernetes else []
    nspawn = [
        "systemd-nspawn",
        "--boot",
        f"--directory={root}",
        f"--machine={name}",
        # Without these two nspawn asks the (absent) system bus to register the machine.
        "--register=no",
        "--keep-unit",
        *(["--capability=CAP_NET_ADMIN"] if not kubernetes else []),
        f"--network-namespace-path={NETNS_DIR / cfg.host_ns(name)}",
        "--console=passive",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        *extra,
    ]
    argv = [
        "sh",
        "-c",
        _JOIN_CGROUPS_AND_EXEC,
        "sh",
        *(str(c / "cgroup.procs") for c in cgroups),
        "--",
        *nspawn,
    ]
    # Writable /proc/sys/net lets the playbooks set net.* sysctls inside the hosts.
    env = {**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}
    log_fd = os.open(cfg.console_log(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    try:
        # A new session: the container outlives this process and ignores the caller's Ctrl-C.
        return os.posix_spawnp(
            "sh",
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, null_fd, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(log_fd)
        os.close(null_fd)


def wait_ready(cfg: LabConfig, state: LabState, names: Sequence[str], progress: Progress) -> None:
    """Wait until sshd answers on each host, then until systemd finished booting it."""
    hosts = [state.host(name) for name in names]
    with progress.step(f"waiting for sshd on {', '.join(names)}"):
        deadline = time.monotonic() + _READY_TIMEOUT
        pending = list(hosts)
        while pending:
            for host in list(pending):
                if not alive(host):
                    raise OperationFailed(
                        f"{host.name}'s container exited while booting "
                        f"(console log: {cfg.console_log(host.name)})",
                        details=tail(cfg.console_log(host.name)),
                    )
                if ssh_banner(cfg.net_ns, host.address):
                    pending.remove(host)
            if pending and time.monotonic() > deadline:
                raise OperationFailed(
                    f"sshd did not answer within {_READY_TIMEOUT:.0f} s on "
                    + ", ".join(h.name for h in pending),
                    details=[f"{h.name}: console log {cfg.console_log(h.name)}" for h in pending],
                )
            if pending:
                time.sleep(0.1)
    with progress.step("waiting for systemd to finish booting"):
        with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
            results = list(pool.map(lambda n: _system_state(cfg, n), names))
        failed = [f"{name}: {text}" for name, text in zip(names, results, strict=True) if text]
        if failed:
            raise OperationFailed("lab hosts did not boot cleanly", details=failed)


def _system_state(cfg: LabConfig, name: str) -> str:
    """'' when systemd reports running, else what is wrong (state and failed units)."""
    result = ssh_run(name, "systemctl is-system-running --wait", config=cfg, timeout=_READY_TIMEOUT)
    if result.stdout.strip() == "running":
        return ""
    failed = ssh_run(name, "systemctl --failed --plain --no-legend", config=cfg, timeout=30)
    units = " ".join(line.split()[0] for line in failed.stdout.splitlines() if line.split())
    state = result.stdout.strip() or result.stderr.strip()
    return f"systemd is {state!r}" + (f", failed units: {units}" if units else "")


def stop_host(cfg: LabConfig, host: HostState) -> HostState:
    """Power a host off and remove its runtime pieces (process, cgroups, mount, netns); keep its
    disk. Tolerates pieces that are already gone, so it also cleans up stale hosts."""
    if host.pid is not None and host.start_time is not None:
        terminate(host.pid, host.start_time)
    for cgroup in (Path(c) for c in host.cgroups):
        kill_cgroup(cgroup)
        remove_cgroup(cgroup)
    root = cfg.host_root(host.name)
    if is_mounted(root):
        umount(root)
    # Delete the link first: it goes at once, while a deleted namespace (and with it the
    # bridge end of the link) is torn down later by the kernel, racing a quick power-on.
    veth = f"vh-{host.name}"
    if netns_exists(cfg.net_ns):
        link = subprocess.run(
            ["ip", "-n", cfg.net_ns, "link", "show", veth], capture_output=True, check=False
        )
        if link.returncode == 0:
            run(["ip", "-n", cfg.net_ns, "link", "delete", veth], f"delete link {veth}")
    ns = cfg.host_ns(host.name)
    if netns_exists(ns):
        run(["ip", "netns", "delete", ns], f"delete netns {ns}")
    return replace(host, pid=None, start_time=None, cgroups=())


def teardown(cfg: LabConfig, state: LabState | None) -> None:
    """Remove every trace of the lab. Without a state file, finds its pieces by name."""
    close_ssh_masters(cfg)
    hosts = list(state.hosts) if state else []
    known = {h.name for h in hosts}
    for name in sorted(_leftover_host_names(cfg) - known):
        fallback = [CGROUP_ROOT / h / cfg.name / name for h in ("systemd", "unified")]
        hosts.append(HostState(name, "", cgroups=tuple(str(c) for c in fallback if c.exists())))
    for host in hosts:
        stop_host(cfg, host)
    kill_relays(cfg)
    if netns_exists(cfg.net_ns):
        run(["ip", "netns", "delete", cfg.net_ns], f"delete netns {cfg.net_ns}")
    parents = {Path(c).parent for h in hosts for c in h.cgroups}
    parents |= {CGROUP_ROOT / h / cfg.name for h in ("systemd", "unified")}
    for parent in parents:
        with contextlib.suppress(OSError):  # gone already, or another lab host still there
            parent.rmdir()
    if cfg.state_dir.exists():
        remove_tree(cfg.state_dir)


def leftovers(cfg: LabConfig) -> bool:
    return netns_exists(cfg.net_ns) or bool(_leftover_host_names(cfg))


def _leftover_host_names(cfg: LabConfig) -> set[str]:
    """Hosts with a netns, mount or cgroup of this lab still present."""
    names: set[str] = set()
    pattern = re.compile(re.escape(cfg.name) + r"-(master|node\d+)")
    if NETNS_DIR.is_dir():
        names |= {m.group(1) for p in NETNS_DIR.iterdir() if (m := pattern.fullmatch(p.name))}
    hosts_dir = cfg.state_dir / "hosts"
    names |= {p.parent.name for p in map(Path, mount_points()) if p.parent.parent == hosts_dir}
    cgroup_dir = CGROUP_ROOT / "systemd" / cfg.name
    if cgroup_dir.is_dir():
        names |= {p.name for p in cgroup_dir.iterdir() if p.is_dir()}
    return names
