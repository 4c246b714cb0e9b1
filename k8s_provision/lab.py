"""The local test lab: Debian hosts booted with systemd-nspawn, each in its own network
namespace, reachable over SSH from the machine's own namespace through a ProxyCommand.

Layout of one lab (name `k8sp` by default):

- netns `<name>-net` holds bridge `br0` (192.168.10.254/24); the relay of the SSH ProxyCommand
  runs there. The machine's own netns never gets a route to the lab subnet.
- per host, netns `<name>-<host>` with `eth0` (a veth to the bridge), an overlay mount over
  the cached base rootfs, cgroups `<hierarchy>/<name>/<host>`, and one systemd-nspawn process.
- the state directory holds the state file (PIDs), SSH key, known_hosts, inventory, ssh_config,
  SSH control sockets, and each host's disk (overlay upper dir) and console log.

Everything the lab starts is recorded by PID (with the process start time, so a reused PID is
never mistaken for ours) and stopped by PID. See docs/lab.md for how to use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from k8s_provision.errors import OperationFailed, UsageError

SUITE = "bookworm"
# Everything the lab hosts need, installed at build time: lab hosts have no registry access.
PACKAGES = (
    "curl",
    "dbus",
    "etcd-client",
    "etcd-server",
    "iproute2",
    "iptables",
    "iputils-ping",
    "kmod",
    "kubernetes-client",
    "less",
    "netcat-openbsd",
    "openssh-server",
    "procps",
    "python3",
    "python3-apt",  # without it Ansible's apt module tries to install it from the network
    "sudo",
    "systemd",
    "systemd-sysv",
)
# Bump when `_customize_base` changes what the image contains: it is part of the cache key.
RECIPE_VERSION = 1

SUBNET = IPv4Network("192.168.10.0/24")
BRIDGE_ADDRESS = IPv4Address("192.168.10.254")
# master is .1 and nodeN is .N+1, so node252 takes .253, the last address below the bridge.
MAX_NODES = 252

DEFAULT_NAME = "k8sp"
DEFAULT_LABS_DIR = Path("/var/lib/k8s-provision/labs")
DEFAULT_CACHE_DIR = Path("/var/cache/k8s-provision")
LOCK_DIR = Path("/run/k8s-provision")
NETNS_DIR = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")

# Lab names become parts of netns, cgroup and interface names; no hyphen keeps `<name>-<host>`
# unambiguous between two labs.
_NAME_RE = re.compile(r"[a-z][a-z0-9]{0,15}")
# SSH control sockets live in <state dir>/cp/: Ansible's are named by a 40-character hash (%C)
# and ssh adds a 17-character temporary suffix, all within sun_path's 107 characters. 45 still
# fits the default directory of the longest lab name.
_MAX_STATE_DIR_LEN = 45
_READY_TIMEOUT = 90.0
_STOP_TIMEOUT = 20.0
_LOCK_TIMEOUT = 600.0
_BUILD_LOCK_TIMEOUT = 1800.0
_CLONE_NEWNET = 0x40000000
# Each lab host's systemd, journald, logind and dbus hold inotify instances, all counted against
# root: the kernel default of 128 runs out at about 15 hosts on the machine (every lab counts),
# and then units such as systemd-ask-password-*.path fail at boot.
_INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
_MIN_INOTIFY_INSTANCES = 1024

# The launcher joins the lab's cgroups before it becomes systemd-nspawn, so each host gets its
# own cgroup subtree (otherwise all hosts share one at the cgroup root). Paths come in as
# positional arguments, never as shell text.
_JOIN_CGROUPS_AND_EXEC = (
    'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
)

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

HostRunState = Literal["running", "off", "dead"]


# ---------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True)
class LabConfig:
    """Where one lab lives. Two labs with different names coexist."""

    name: str
    state_dir: Path
    cache_dir: Path

    @property
    def net_ns(self) -> str:
        return f"{self.name}-net"

    def host_ns(self, host: str) -> str:
        return f"{self.name}-{host}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.state_dir / "inventory.ini"

    @property
    def ssh_config(self) -> Path:
        return self.state_dir / "ssh_config"

    @property
    def control_dir(self) -> Path:
        return self.state_dir / "cp"

    def host_dir(self, host: str) -> Path:
        return self.state_dir / "hosts" / host

    def host_root(self, host: str) -> Path:
        return self.host_dir(host) / "root"

    def console_log(self, host: str) -> Path:
        return self.host_dir(host) / "console.log"


@dataclass(frozen=True)
class HostState:
    """One lab host. `pid` is None while the host is powered off."""

    name: str
    address: str
    pid: int | None = None
    start_time: int | None = None
    cgroups: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabState:
    config: LabConfig
    base: Path
    hosts: tuple[HostState, ...]

    @property
    def inventory(self) -> Path:
        return self.config.inventory

    @property
    def node_count(self) -> int:
        return sum(1 for host in self.hosts if host.name != "master")

    def host(self, name: str) -> HostState:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise UsageError(f"lab {self.config.name} has no host {name!r} (hosts: {known})")

    def find(self, name: str) -> HostState | None:
        return next((host for host in self.hosts if host.name == name), None)


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    state: HostRunState
    pid: int | None


@dataclass(frozen=True)
class LabStatus:
    name: str
    state_dir: Path
    up: bool
    hosts: tuple[HostStatus, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state_dir": str(self.state_dir),
            "up": self.up,
            "inventory": str(self.state_dir / "inventory.ini") if self.up else None,
            "hosts": [
                {"host": h.name, "address": h.address, "state": h.state, "pid": h.pid}
                for h in self.hosts
            ],
        }


@dataclass(frozen=True)
class AptSource:
    uri: str
    keyring: Path | None


# ---------------------------------------------------------------------------------------------
# Pure helpers


def make_config(
    name: str | None = None, state_dir: Path | None = None, cache_dir: Path | None = None
) -> LabConfig:
    """The lab's paths: explicit arguments, else K8S_PROVISION_LAB_NAME, K8S_PROVISION_LAB_DIR
    (only with the environment's name) and K8S_PROVISION_CACHE_DIR, else the defaults."""
    if name is None:
        name = os.environ.get("K8S_PROVISION_LAB_NAME") or DEFAULT_NAME
        env_dir = os.environ.get("K8S_PROVISION_LAB_DIR")
        if state_dir is None and env_dir:
            state_dir = Path(env_dir)
    if not _NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid lab name {name!r}: use 1-16 lowercase letters and digits, starting with a "
            "letter (it becomes part of network namespace and cgroup names)"
        )
    state_dir = (state_dir or DEFAULT_LABS_DIR / name).absolute()
    if len(str(state_dir)) > _MAX_STATE_DIR_LEN or re.search(r"[\s,:]", str(state_dir)):
        raise UsageError(
            f"lab directory {state_dir} is unusable: it must be at most {_MAX_STATE_DIR_LEN} "
            "characters (SSH control sockets live there) without spaces, commas or colons "
            "(overlay mount options); set K8S_PROVISION_LAB_DIR to a shorter path"
        )
    cache = cache_dir or Path(os.environ.get("K8S_PROVISION_CACHE_DIR") or DEFAULT_CACHE_DIR)
    return LabConfig(name=name, state_dir=state_dir, cache_dir=cache.absolute())


def lab_hosts(nodes: int) -> tuple[tuple[str, str], ...]:
    """(name, address) of every host of a lab with `nodes` nodes: master .1, nodeN .N+1."""
    check_nodes(nodes)
    base = int(SUBNET.network_address)
    hosts = [("master", str(IPv4Address(base + 1)))]
    hosts += [(f"node{i}", str(IPv4Address(base + i + 1))) for i in range(1, nodes + 1)]
    return tuple(hosts)


def check_nodes(nodes: int) -> None:
    if not 1 <= nodes <= MAX_NODES:
        raise UsageError(f"--nodes must be between 1 and {MAX_NODES}, not {nodes}")


def etcd_members(host_names: Sequence[str]) -> tuple[str, ...]:
    """master, node1 and node2 when there are at least three hosts, else master alone: an etcd
    cluster needs an odd member count, and further nodes stay plain nodes."""
    members = tuple(name for name in ("master", "node1", "node2") if name in host_names)
    return members if len(members) == 3 else members[:1]


def recipe_key(
    arch: str,
    packages: Sequence[str] = PACKAGES,
    suite: str = SUITE,
    version: int = RECIPE_VERSION,
) -> str:
    """Cache key of the base rootfs: changes exactly when what the image contains changes."""
    recipe = {
        "arch": arch,
        "packages": sorted(set(packages)),
        "suite": suite,
        "variant": "minbase",
        "version": version,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def apt_source(
    suite: str = SUITE,
    sources_dir: Path = Path("/etc/apt/sources.list.d"),
    sources_list: Path = Path("/etc/apt/sources.list"),
) -> AptSource:
    """The Debian mirror this machine's apt already uses (deb822 `.sources` files first, then
    one-line `sources.list`): the lab never names a host of its own."""
    override = os.environ.get("K8S_PROVISION_LAB_MIRROR")
    if override:
        return AptSource(uri=override, keyring=None)
    candidates: list[tuple[list[str], AptSource]] = []
    for path in sorted(sources_dir.glob("*.sources")) if sources_dir.is_dir() else []:
        for stanza in _deb822_stanzas(path.read_text(errors="replace")):
            enabled = stanza.get("enabled", "yes").lower() != "no"
            if not enabled or "deb" not in stanza.get("types", "").split():
                continue
            signed_by = stanza.get("signed-by", "")
            keyring = Path(signed_by) if signed_by.startswith("/") else None
            for uri in stanza.get("uris", "").split():
                candidates.append((stanza.get("suites", "").split(), AptSource(uri, keyring)))
    if sources_list.is_file():
        for line in sources_list.read_text(errors="replace").splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                candidates.append(([words[2]], AptSource(words[1], None)))
    for suites, source in candidates:
        if suite in suites:
            return source
    # Another release's main archive also serves this suite; security and updates do not.
    for suites, source in candidates:
        if "security" not in source.uri and any("-" not in s for s in suites):
            return source
    raise UsageError(
        f"no Debian mirror found in {sources_dir}/*.sources or {sources_list}",
        details=["set K8S_PROVISION_LAB_MIRROR to a Debian mirror URL that serves " + suite],
    )


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, last = {}, ""
        elif line[0] in " \t" and last:
            current[last] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            last = key.strip().lower()
            current[last] = value.strip()
    return stanzas


def proxy_command(config: LabConfig, python: str = sys.executable) -> str:
    """The ProxyCommand (shell text with ssh's %h %p) that enters the lab network to connect."""
    argv = ["nsenter", f"--net={NETNS_DIR / config.net_ns}", python, "-m"]
    return shlex.join([*argv, "k8s_provision.lab_relay"]) + " %h %p"


def inventory_text(config: LabConfig, hosts: Sequence[tuple[str, str]], python: str) -> str:
    """The lab's Ansible inventory. Plain ansible, ansible-playbook and paramiko (which honours
    ProxyCommand) use it from the machine's own netns, with host key checking on."""

    def line(name: str, address: str) -> str:
        return f"{name} ansible_host={address} ip={address}"

    names = [name for name, _ in hosts]
    common_args = " ".join(
        [
            f"-o UserKnownHostsFile={config.known_hosts}",
            "-o StrictHostKeyChecking=yes",
            f'-o ProxyCommand="{proxy_command(config, python)}"',
        ]
    )
    sections = [
        f"# Written by `k8s-provision lab up` for lab {config.name}; rewritten on every change.",
        "[masters]",
        *(line(n, a) for n, a in hosts if n == "master"),
        "",
        "[nodes]",
        *(line(n, a) for n, a in hosts if n != "master"),
        "",
        "[etcd]",
        *etcd_members(names),
        "",
        "[all:vars]",
        "ansible_user=root",
        f"ansible_ssh_private_key_file={config.key}",
        "ansible_python_interpreter=/usr/bin/python3",
        "k8s_os_family=debian",
        f"ansible_ssh_common_args={common_args}",
        "# Every lab uses the same addresses: ControlPersist sockets of their own keep Ansible",
        "# from reusing a connection to another lab's host.",
        f"ansible_control_path_dir={config.control_dir}",
    ]
    return "\n".join(sections) + "\n"


def ssh_config_text(config: LabConfig, hosts: Sequence[tuple[str, str]], python: str) -> str:
    """An ssh_config for `ssh -F <state>/ssh_config HOST`; also what `lab ssh` and `ssh_run`
    use. Control sockets stay in the lab dir so `lab down` can close them."""
    lines = [f"# Written by `k8s-provision lab up` for lab {config.name}."]
    for name, address in hosts:
        lines += [f"Host {name}", f"    HostName {address}"]
    lines += [
        "Host *",
        "    User root",
        f"    IdentityFile {config.key}",
        "    IdentitiesOnly yes",
        f"    UserKnownHostsFile {config.known_hosts}",
        "    StrictHostKeyChecking yes",
        f"    ProxyCommand {proxy_command(config, python)}",
        "    ControlMaster auto",
        f"    ControlPath {config.control_dir}/%r@%h:%p",
        "    ControlPersist 60",
        "    BatchMode yes",
        "    ConnectTimeout 10",
        "    LogLevel ERROR",
    ]
    return "\n".join(lines) + "\n"


def hosts_file_text(hosts: Sequence[tuple[str, str]]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{address}\t{name}" for name, address in hosts]
    return "\n".join(lines) + "\n"


def known_hosts_lines(name: str, address: str, public_keys: Sequence[str]) -> list[str]:
    """known_hosts entries for one host, under its address (what ansible connects to) and name."""
    lines = []
    for key in public_keys:
        fields = key.split()
        if len(fields) >= 2:
            lines.append(f"{name},{address} {fields[0]} {fields[1]}")
    return lines


def state_to_json(state: LabState) -> str:
    return json.dumps(
        {
            "version": 1,
            "name": state.config.name,
            "base": str(state.base),
            "hosts": [
                {
                    "name": h.name,
                    "address": h.address,
                    "pid": h.pid,
                    "start_time": h.start_time,
                    "cgroups": list(h.cgroups),
                }
                for h in state.hosts
            ],
        },
        indent=2,
    )


def state_from_json(config: LabConfig, text: str) -> LabState:
    data = json.loads(text)
    if data.get("version") != 1 or data.get("name") != config.name:
        raise OperationFailed(
            f"{config.state_file} does not belong to lab {config.name} (or is from another "
            "version); remove that directory"
        )
    hosts = tuple(
        HostState(
            name=h["name"],
            address=h["address"],
            pid=h["pid"],
            start_time=h["start_time"],
            cgroups=tuple(h["cgroups"]),
        )
        for h in data["hosts"]
    )
    return LabState(config=config, base=Path(data["base"]), hosts=hosts)


# ---------------------------------------------------------------------------------------------
# Environment checks


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


def install_dependencies() -> None:
    """apt-get the packages that provide the missing tools (the `--install-deps` option)."""
    if os.geteuid() != 0:
        raise UsageError("--install-deps needs root: run it with sudo")
    packages = sorted({_TOOLS[tool] for tool in _TOOLS if shutil.which(tool) is None})
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


# ---------------------------------------------------------------------------------------------
# Public API


def up(nodes: int = 2, *, config: LabConfig | None = None, install_deps: bool = False) -> LabState:
    """Start the lab, or bring a running one to `nodes` nodes. A running lab is left alone (a
    quick no-op); missing, dead or powered-off hosts are (re)started; nodes are never removed.
    State left by a lab whose network is gone (a machine reboot) is cleaned up first."""
    cfg = config or make_config()
    check_nodes(nodes)
    if install_deps:
        install_dependencies()
    require_environment()
    progress = _Progress()
    with _lab_lock(cfg, progress):
        state = _load_state(cfg)
        if (state is not None and not _netns_exists(cfg.net_ns)) or (
            state is None and _leftovers(cfg)
        ):
            progress.note(f"lab {cfg.name}: cleaning up stale state (lab network or state gone)")
            _teardown(cfg, state)
            state = None
        if state is None:
            state = _create_lab(cfg, _ensure_base(cfg.cache_dir, progress), progress)
        wanted = lab_hosts(max(nodes, state.node_count))
        to_start = [
            (name, address)
            for name, address in wanted
            if (host := state.find(name)) is None or not _alive(host)
        ]
        added = any(state.find(name) is None for name, _ in to_start)
        if to_start:
            with progress.step(f"starting {', '.join(name for name, _ in to_start)}"):
                for name, _ in to_start:
                    if (stale := state.find(name)) is not None:
                        state = _with_host(state, _stop_host(cfg, stale))
                state = _start_hosts(cfg, state, to_start, progress)
        if added:
            _refresh_hosts_files(cfg, state)
        _write_access_files(cfg, state)
        if to_start:
            _wait_ready(cfg, state, [name for name, _ in to_start], progress)
        return state


def down(*, config: LabConfig | None = None) -> None:
    """Stop everything the lab started (by PID), unmount, remove namespaces, cgroups and state.
    Safe to run on a lab that is half up, stale, or gone."""
    cfg = config or make_config()
    if os.geteuid() != 0:
        raise UsageError("lab down needs root: run it with sudo")
    progress = _Progress()
    with _lab_lock(cfg, progress):
        state = _load_state(cfg)
        if state is None and not _leftovers(cfg) and not cfg.state_dir.exists():
            return
        with progress.step(f"stopping lab {cfg.name}"):
            _teardown(cfg, state)


def status(*, config: LabConfig | None = None) -> LabStatus:
    cfg = config or make_config()
    state = _load_state(cfg)
    if state is None:
        return LabStatus(name=cfg.name, state_dir=cfg.state_dir, up=False, hosts=())
    network = _netns_exists(cfg.net_ns)
    hosts = tuple(
        HostStatus(h.name, h.address, _run_state(h) if network else "dead", h.pid)
        for h in state.hosts
    )
    return LabStatus(name=cfg.name, state_dir=cfg.state_dir, up=network, hosts=hosts)


def inventory_path(*, config: LabConfig | None = None) -> Path:
    cfg = config or make_config()
    if not cfg.inventory.exists() or _load_state(cfg) is None:
        raise UsageError(f"lab {cfg.name} is not up: run `k8s-provision lab up` first")
    return cfg.inventory


def ssh_argv(host: str, command: str | Sequence[str] = (), *, config: LabConfig) -> list[str]:
    """The ssh command line for a lab host (a sequence command is quoted for the remote shell)."""
    remote = command if isinstance(command, str) else shlex.join(command)
    return ["ssh", "-F", str(config.ssh_config), host, *(["--", remote] if remote else [])]


def ssh_run(
    host: str,
    command: str | Sequence[str],
    *,
    config: LabConfig | None = None,
    timeout: float = 120.0,
    check: bool = False,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command on a lab host over SSH; returns the CompletedProcess (255: SSH failed)."""
    cfg = config or make_config()
    _require_state(cfg).host(host)
    argv = ssh_argv(host, command, config=cfg)
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, input=input, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise OperationFailed(f"`{shlex.join(argv)}` timed out after {timeout:.0f} s") from err
    if check and result.returncode != 0:
        raise OperationFailed(
            f"`{shlex.join(argv)}` exited {result.returncode}",
            details=(result.stderr or result.stdout).strip().splitlines()[-10:],
        )
    return result


def ssh_interactive(
    host: str, command: Sequence[str] = (), *, config: LabConfig | None = None
) -> int:
    """`lab ssh HOST [-- CMD]`: ssh attached to the caller's terminal; returns ssh's exit code."""
    cfg = config or make_config()
    _require_state(cfg).host(host)
    return subprocess.call(ssh_argv(host, command, config=cfg))


def power_off(host: str, *, config: LabConfig | None = None) -> LabState:
    """Stop one host's container, like pulling its plug; its disk stays. Others are untouched."""
    cfg = config or make_config()
    require_environment()
    with _lab_lock(cfg, _Progress()):
        state = _require_state(cfg)
        stopped = _stop_host(cfg, state.host(host))
        state = _with_host(state, stopped)
        _save_state(state)
        return state


def power_on(host: str, *, config: LabConfig | None = None) -> LabState:
    """Boot one powered-off (or dead) host again with its disk; a running host is left alone."""
    cfg = config or make_config()
    require_environment()
    progress = _Progress()
    with _lab_lock(cfg, progress):
        state = _require_state(cfg)
        current = state.host(host)
        if _alive(current):
            return state
        state = _with_host(state, _stop_host(cfg, current))
        state = _start_hosts(cfg, state, [(current.name, current.address)], progress)
        _wait_ready(cfg, state, [host], progress)
        return state


# ---------------------------------------------------------------------------------------------
# Base rootfs


def _ensure_base(cache_dir: Path, progress: _Progress) -> Path:
    """The cached base rootfs for the current recipe, built when missing. Concurrent builders
    wait on a lock; a build happens in a temporary directory renamed into place when done."""
    key = recipe_key(_dpkg_arch())
    rootfs_dir = cache_dir / "rootfs"
    final = rootfs_dir / key
    if final.is_dir():
        return final
    rootfs_dir.mkdir(parents=True, exist_ok=True)
    with _flock(rootfs_dir / f"{key}.lock", _BUILD_LOCK_TIMEOUT, progress, "rootfs build"):
        if final.is_dir():
            return final
        for stale in rootfs_dir.glob(f".build-{key}-*"):
            _remove_tree(stale)
        source = apt_source()
        building = rootfs_dir / f".build-{key}-{os.getpid()}"
        log = rootfs_dir / f"{key}.build.log"
        started = time.monotonic()
        with progress.step(f"building base rootfs {key} from {source.uri} (about a minute)"):
            _debootstrap(building, source, log, progress)
            _customize_base(building, key)
        seconds = time.monotonic() - started
        size = _tree_size(building)
        building.rename(final)
        meta = {
            "key": key,
            "suite": SUITE,
            "packages": list(PACKAGES),
            "recipe_version": RECIPE_VERSION,
            "mirror": source.uri,
            "build_seconds": round(seconds, 1),
            "size_bytes": size,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _write_file(rootfs_dir / f"{key}.json", json.dumps(meta, indent=2) + "\n")
        progress.note(f"base rootfs {key}: built in {seconds:.0f} s, {size / 1e6:.0f} MB")
        return final


def base_info(cache_dir: Path) -> dict[str, object] | None:
    """Build time and size recorded for the current recipe's rootfs, if it was built."""
    meta = cache_dir / "rootfs" / f"{recipe_key(_dpkg_arch())}.json"
    if not meta.exists():
        return None
    data: dict[str, object] = json.loads(meta.read_text())
    return data


def _debootstrap(target: Path, source: AptSource, log: Path, progress: _Progress) -> None:
    argv = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        *([f"--keyring={source.keyring}"] if source.keyring and source.keyring.exists() else []),
        SUITE,
        str(target),
        source.uri,
    ]
    phase = ""
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            text = line.strip()
            if not text.startswith("I: "):
                continue
            # "I: Retrieving libc6 2.36-9" and "I: Validating libc6 ..." alternate per package:
            # both are the download phase. A log gets one line per phase, a terminal them all.
            verb = text.split()[1] if len(text.split()) > 1 else ""
            verb = "Retrieving" if verb == "Validating" else verb
            progress.detail(text, milestone=verb != phase)
            phase = verb
        code = proc.wait()
    if code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        raise OperationFailed(
            f"debootstrap exited {code} (full log: {log})",
            details=[*tail, f"command: {shlex.join(argv)}"],
        )


def _customize_base(root: Path, key: str) -> None:
    """Make the image generic: each host gets its own identity and keys when it is created."""
    _run(["chroot", str(root), "apt-get", "clean"], "apt-get clean in the new rootfs")
    for host_key in (root / "etc/ssh").glob("ssh_host_*"):
        host_key.unlink()
    _write_file(root / "etc/machine-id", "")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() and not dbus_id.is_symlink():
        dbus_id.unlink()
    _write_file(root / "etc/hostname", "localhost\n")
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    _write_file(resolv, "# Lab hosts have no DNS: lab names resolve through /etc/hosts.\n")
    # Debian enables etcd at install; a first boot would bootstrap a one-member cluster whose
    # data dir then overrides ETCD_INITIAL_CLUSTER. The playbooks start it when configured.
    _run(["chroot", str(root), "systemctl", "disable", "--quiet", "etcd.service"], "disable etcd")
    shutil.rmtree(root / "var/lib/etcd/default", ignore_errors=True)
    _write_file(root / "etc/k8s-provision-lab", f"base rootfs recipe {key}\n")


def _dpkg_arch() -> str:
    return _run(["dpkg", "--print-architecture"], "dpkg --print-architecture").stdout.strip()


def _tree_size(root: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


# ---------------------------------------------------------------------------------------------
# Lab and host lifecycle


def _create_lab(cfg: LabConfig, base: Path, progress: _Progress) -> LabState:
    with progress.step(f"creating lab network {cfg.net_ns}"):
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        cfg.control_dir.mkdir(mode=0o700, exist_ok=True)
        if not cfg.key.exists():
            comment = f"k8s-provision lab {cfg.name}"
            _run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(cfg.key)],
                "ssh-keygen for the lab key",
            )
        cfg.key.chmod(0o600)
        state = LabState(config=cfg, base=base, hosts=())
        _save_state(state)
        ns = cfg.net_ns
        _run(["ip", "netns", "add", ns], f"create netns {ns}")
        for args in (
            ["link", "set", "lo", "up"],
            ["link", "add", "br0", "type", "bridge"],
            ["addr", "add", f"{BRIDGE_ADDRESS}/{SUBNET.prefixlen}", "dev", "br0"],
            ["link", "set", "br0", "up"],
        ):
            _run(["ip", "-n", ns, *args], f"set up the lab bridge in {ns}")
        return state


def _start_hosts(
    cfg: LabConfig, state: LabState, hosts: Sequence[tuple[str, str]], progress: _Progress
) -> LabState:
    """Create the hosts' networks and disks (in parallel: host key generation dominates), then
    launch each container in the background. The state is saved after each launch, and a half
    prepared host is found by name, so `down` can always clean up."""
    _ensure_inotify_instances(progress)
    everyone = {(h.name, h.address) for h in state.hosts} | set(hosts)
    hosts_file = sorted(everyone, key=_host_order)
    with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
        list(pool.map(lambda h: _prepare_host(cfg, state.base, h[0], h[1], hosts_file), hosts))
    for name, address in hosts:
        cgroups = _create_cgroups(cfg.name, name)
        pid = _launch(cfg, name, cfg.host_root(name), cgroups)
        host = HostState(name, address, pid, _start_time(pid), tuple(str(c) for c in cgroups))
        state = _with_host(state, host)
        _save_state(state)
    return state


def _ensure_inotify_instances(progress: _Progress) -> None:
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
    cfg: LabConfig, base: Path, name: str, address: str, hosts: Sequence[tuple[str, str]]
) -> None:
    host_dir = cfg.host_dir(name)
    for sub in ("upper", "work", "root"):
        (host_dir / sub).mkdir(parents=True, exist_ok=True)
    _create_host_network(cfg, name, address)
    root = cfg.host_root(name)
    if not _is_mounted(root):
        upper, work = host_dir / "upper", host_dir / "work"
        options = f"lowerdir={base},upperdir={upper},workdir={work}"
        _run(["mount", "-t", "overlay", "overlay", "-o", options, str(root)], f"mount {name} disk")
    _prepare_root(cfg, root, name, hosts)


def _create_host_network(cfg: LabConfig, name: str, address: str) -> None:
    ns, lab_ns = cfg.host_ns(name), cfg.net_ns
    last_octet = int(IPv4Address(address)) & 0xFF
    # A fixed MAC per address: a host that powers back on looks like the same NIC to its peers.
    mac = f"02:6b:38:73:0a:{last_octet:02x}"
    _run(["ip", "netns", "add", ns], f"create netns {ns}")
    veth = f"vh-{name}"  # in the lab netns, where names only need to be unique per lab
    peer = ["peer", "name", "eth0", "address", mac, "netns", ns]
    _run(
        ["ip", "-n", lab_ns, "link", "add", veth, "type", "veth", *peer],
        f"create {name}'s network link",
    )
    for argv in (
        ["ip", "-n", lab_ns, "link", "set", veth, "master", "br0", "up"],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
        ["ip", "-n", ns, "addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0"],
        ["ip", "-n", ns, "link", "set", "eth0", "up"],
        ["ip", "-n", ns, "route", "add", "default", "via", str(BRIDGE_ADDRESS)],
    ):
        _run(argv, f"configure {name}'s network")


def _prepare_root(cfg: LabConfig, root: Path, name: str, hosts: Sequence[tuple[str, str]]) -> None:
    machine_id = root / "etc/machine-id"
    if not machine_id.read_text().strip():
        _write_file(machine_id, uuid.uuid4().hex + "\n")
    _write_file(root / "etc/hostname", name + "\n")
    _write_file(root / "etc/hosts", hosts_file_text(hosts))
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    pubkey = Path(f"{cfg.key}.pub").read_text()
    _write_file(ssh_dir / "authorized_keys", pubkey, mode=0o600)
    # Generates only the keys that are missing: a host keeps its keys across power cycles.
    _run(["chroot", str(root), "ssh-keygen", "-A"], f"generate {name}'s SSH host keys")


def _create_cgroups(lab: str, host: str) -> list[Path]:
    dirs = [CGROUP_ROOT / "systemd" / lab / host]
    if (CGROUP_ROOT / "unified" / "cgroup.procs").exists():
        dirs.append(CGROUP_ROOT / "unified" / lab / host)
    memory = _own_cgroup("memory")
    if memory is not None and (CGROUP_ROOT / "memory" / "cgroup.procs").exists():
        # A child of our own memory cgroup: the machine may account and limit us there.
        dirs.append(CGROUP_ROOT / "memory" / memory.lstrip("/") / lab / host)
    for path in dirs:
        path.mkdir(parents=True, exist_ok=True)
    return dirs


def _own_cgroup(controller: str) -> str | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return None


def _launch(cfg: LabConfig, name: str, root: Path, cgroups: Sequence[Path]) -> int:
    nspawn = [
        "systemd-nspawn",
        "--boot",
        f"--directory={root}",
        f"--machine={name}",
        # Without these two nspawn asks the (absent) system bus to register the machine.
        "--register=no",
        "--keep-unit",
        "--capability=CAP_NET_ADMIN",
        f"--network-namespace-path={NETNS_DIR / cfg.host_ns(name)}",
        "--console=passive",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
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


def _wait_ready(cfg: LabConfig, state: LabState, names: Sequence[str], progress: _Progress) -> None:
    """Wait until sshd answers on each host, then until systemd finished booting it."""
    hosts = [state.host(name) for name in names]
    with progress.step(f"waiting for sshd on {', '.join(names)}"):
        deadline = time.monotonic() + _READY_TIMEOUT
        pending = list(hosts)
        while pending:
            for host in list(pending):
                if not _alive(host):
                    raise OperationFailed(
                        f"{host.name}'s container exited while booting "
                        f"(console log: {cfg.console_log(host.name)})",
                        details=_tail(cfg.console_log(host.name)),
                    )
                if _ssh_banner(cfg.net_ns, host.address):
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


def _stop_host(cfg: LabConfig, host: HostState) -> HostState:
    """Power a host off and remove its runtime pieces (process, cgroups, mount, netns); keep its
    disk. Tolerates pieces that are already gone, so it also cleans up stale hosts."""
    if host.pid is not None and host.start_time is not None:
        _terminate(host.pid, host.start_time)
    for cgroup in (Path(c) for c in host.cgroups):
        _kill_cgroup(cgroup)
        _remove_cgroup(cgroup)
    root = cfg.host_root(host.name)
    if _is_mounted(root):
        _umount(root)
    # Delete the link first: it goes at once, while a deleted namespace (and with it the
    # bridge end of the link) is torn down later by the kernel, racing a quick power-on.
    veth = f"vh-{host.name}"
    if _netns_exists(cfg.net_ns):
        link = subprocess.run(
            ["ip", "-n", cfg.net_ns, "link", "show", veth], capture_output=True, check=False
        )
        if link.returncode == 0:
            _run(["ip", "-n", cfg.net_ns, "link", "delete", veth], f"delete link {veth}")
    ns = cfg.host_ns(host.name)
    if _netns_exists(ns):
        _run(["ip", "netns", "delete", ns], f"delete netns {ns}")
    return replace(host, pid=None, start_time=None, cgroups=())


def _teardown(cfg: LabConfig, state: LabState | None) -> None:
    """Remove every trace of the lab. Without a state file, finds its pieces by name."""
    _close_ssh_masters(cfg)
    hosts = list(state.hosts) if state else []
    known = {h.name for h in hosts}
    for name in sorted(_leftover_host_names(cfg) - known):
        fallback = [CGROUP_ROOT / h / cfg.name / name for h in ("systemd", "unified")]
        hosts.append(HostState(name, "", cgroups=tuple(str(c) for c in fallback if c.exists())))
    for host in hosts:
        _stop_host(cfg, host)
    _kill_relays(cfg)
    if _netns_exists(cfg.net_ns):
        _run(["ip", "netns", "delete", cfg.net_ns], f"delete netns {cfg.net_ns}")
    parents = {Path(c).parent for h in hosts for c in h.cgroups}
    parents |= {CGROUP_ROOT / h / cfg.name for h in ("systemd", "unified")}
    for parent in parents:
        with contextlib.suppress(OSError):  # gone already, or another lab host still there
            parent.rmdir()
    if cfg.state_dir.exists():
        _remove_tree(cfg.state_dir)


def _leftovers(cfg: LabConfig) -> bool:
    return _netns_exists(cfg.net_ns) or bool(_leftover_host_names(cfg))


def _leftover_host_names(cfg: LabConfig) -> set[str]:
    """Hosts with a netns, mount or cgroup of this lab still present."""
    names: set[str] = set()
    pattern = re.compile(re.escape(cfg.name) + r"-(master|node\d+)")
    if NETNS_DIR.is_dir():
        names |= {m.group(1) for p in NETNS_DIR.iterdir() if (m := pattern.fullmatch(p.name))}
    hosts_dir = cfg.state_dir / "hosts"
    names |= {p.parent.name for p in map(Path, _mount_points()) if p.parent.parent == hosts_dir}
    cgroup_dir = CGROUP_ROOT / "systemd" / cfg.name
    if cgroup_dir.is_dir():
        names |= {p.name for p in cgroup_dir.iterdir() if p.is_dir()}
    return names


def _refresh_hosts_files(cfg: LabConfig, state: LabState) -> None:
    """New hosts joined: rewrite /etc/hosts on the running ones through their mounted disks."""
    text = hosts_file_text([(h.name, h.address) for h in state.hosts])
    for host in state.hosts:
        root = cfg.host_root(host.name)
        if _is_mounted(root):
            _write_file(root / "etc/hosts", text)


def _write_access_files(cfg: LabConfig, state: LabState) -> None:
    """known_hosts (from each host's disk), inventory and ssh_config."""
    lines: list[str] = []
    for host in state.hosts:
        keys_dir = cfg.host_dir(host.name) / "upper/etc/ssh"
        keys = [p.read_text() for p in sorted(keys_dir.glob("ssh_host_*_key.pub"))]
        lines += known_hosts_lines(host.name, host.address, keys)
    pairs = [(h.name, h.address) for h in state.hosts]
    _write_file(cfg.known_hosts, "\n".join(lines) + "\n", only_if_changed=True)
    _write_file(cfg.inventory, inventory_text(cfg, pairs, sys.executable), only_if_changed=True)
    _write_file(cfg.ssh_config, ssh_config_text(cfg, pairs, sys.executable), only_if_changed=True)


def _with_host(state: LabState, host: HostState) -> LabState:
    hosts = [h for h in state.hosts if h.name != host.name]
    ordered = sorted([*hosts, host], key=lambda h: _host_order((h.name, h.address)))
    return replace(state, hosts=tuple(ordered))


def _host_order(host: tuple[str, str]) -> int:
    return int(IPv4Address(host[1]))


def _load_state(cfg: LabConfig) -> LabState | None:
    try:
        text = cfg.state_file.read_text()
    except FileNotFoundError:
        return None
    return state_from_json(cfg, text)


def _require_state(cfg: LabConfig) -> LabState:
    state = _load_state(cfg)
    if state is None:
        raise UsageError(f"lab {cfg.name} is not up: run `k8s-provision lab up` first")
    return state


def _save_state(state: LabState) -> None:
    _write_file(state.config.state_file, state_to_json(state) + "\n")


# ---------------------------------------------------------------------------------------------
# Processes


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks, or None if it is gone or a zombie. PID and
    start time together identify a process: a PID alone may be reused after a reboot."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def _alive(host: HostState) -> bool:
    return host.pid is not None and _start_time(host.pid) == host.start_time


def _run_state(host: HostState) -> HostRunState:
    if host.pid is None:
        return "off"
    return "running" if _alive(host) else "dead"


def _terminate(pid: int, start_time: int) -> None:
    """SIGTERM (nspawn powers the container off), wait, then SIGKILL. Only if `pid` is still
    the process we started."""
    for sig, timeout in ((signal.SIGTERM, _STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        if _start_time(pid) != start_time:
            _reap(pid)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            if _start_time(pid) != start_time:
                return
            time.sleep(0.05)
    raise OperationFailed(f"process {pid} survived SIGKILL")


def _reap(pid: int) -> None:
    """Collect the exit status when the container is our own child (else it would linger as a
    zombie in a long-lived caller such as a test session)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _kill_cgroup(cgroup: Path) -> None:
    """SIGKILL whatever is still in a lab host's cgroup: everything there was started by it."""
    deadline = time.monotonic() + 5.0
    while True:
        pids = _cgroup_pids(cgroup)
        if not pids:
            return
        if time.monotonic() > deadline:
            raise OperationFailed(f"processes {pids} in {cgroup} survived SIGKILL")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _reap(pid)
        time.sleep(0.05)


def _cgroup_pids(cgroup: Path) -> list[int]:
    # os.walk skips directories that vanish under it: a dying host's systemd removes its own
    # cgroups while we look (rglob raised FileNotFoundError there).
    pids: list[int] = []
    for root, _dirs, files in os.walk(cgroup):
        if "cgroup.procs" in files:
            pids += [int(p) for p in _read_lines(Path(root) / "cgroup.procs")]
    return pids


def _remove_cgroup(cgroup: Path) -> None:
    if not cgroup.exists():
        return
    # cgroupfs removes a cgroup with rmdir once its children are gone: deepest first.
    for root, _dirs, _files in os.walk(cgroup, topdown=False):
        with contextlib.suppress(FileNotFoundError):
            Path(root).rmdir()


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


def _close_ssh_masters(cfg: LabConfig) -> None:
    """Ask the SSH ControlPersist masters whose sockets are in the lab dir to exit."""
    if not cfg.control_dir.is_dir():
        return
    for sock in cfg.control_dir.iterdir():
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "lab"],
                capture_output=True,
                timeout=10,
                check=False,
            )


def _kill_relays(cfg: LabConfig) -> None:
    """End ProxyCommand relays still inside the lab network (e.g. from ansible's own
    ControlPersist masters): each keeps the namespace alive after `ip netns delete`."""
    try:
        target = os.stat(NETNS_DIR / cfg.net_ns)
    except FileNotFoundError:
        return
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ns = os.stat(proc / "ns/net")
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        same_ns = (ns.st_dev, ns.st_ino) == (target.st_dev, target.st_ino)
        if same_ns and b"k8s_provision.lab_relay" in cmdline:
            pid = int(proc.name)
            start = _start_time(pid)
            if start is not None:
                _terminate(pid, start)


# ---------------------------------------------------------------------------------------------
# Network namespaces


def _netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def _socket_in_netns(netns: str) -> Iterator[socket.socket]:
    """A TCP socket created inside `netns`: setns moves only this thread, and only while the
    socket is created; the socket stays in that namespace afterwards."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(NETNS_DIR / netns, os.O_RDONLY)
    try:
        _setns(target)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
    with sock:
        yield sock


def _ssh_banner(netns: str, address: str) -> bool:
    """True once sshd answers on address:22 with its banner, seen from the lab network."""
    with _socket_in_netns(netns) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect((address, 22))
            return sock.recv(64).startswith(b"SSH-")
        except OSError:
            return False


# ---------------------------------------------------------------------------------------------
# Mounts and files


def _mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        field = line.split()[1]
        # /proc/mounts escapes space, tab, newline and backslash as octal.
        points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field))
    return points


def _is_mounted(path: Path) -> bool:
    return str(path) in _mount_points()


def _umount(path: Path) -> None:
    for _ in range(20):
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.1)
    # Still busy after 2 s: detach it so it disappears now and is freed when unused.
    _run(["umount", "--lazy", str(path)], f"unmount {path}")


def _remove_tree(path: Path) -> None:
    """rm -r that first unmounts whatever is mounted below `path`, and refuses to descend
    into a mount it could not remove (never delete through a mount into another filesystem)."""
    prefix = str(path).rstrip("/") + "/"
    for point in sorted((p for p in _mount_points() if p.startswith(prefix)), reverse=True):
        _umount(Path(point))
    remaining = [p for p in _mount_points() if p.startswith(prefix)]
    if remaining:
        raise OperationFailed(f"cannot remove {path}: still mounted below it", details=remaining)
    shutil.rmtree(path)


def _write_file(path: Path, text: str, *, mode: int = 0o644, only_if_changed: bool = False) -> None:
    """Write atomically (temp file + rename): a reader never sees half a file."""
    if only_if_changed and path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)


def _tail(path: Path, lines: int = 15) -> list[str]:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-lines:]
    except FileNotFoundError:
        return []


def _run(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OperationFailed(
            f"{what} failed: `{shlex.join(argv)}` exited {result.returncode}",
            details=result.stderr.strip().splitlines()[-10:],
        )
    return result


# ---------------------------------------------------------------------------------------------
# Locks and progress


@contextlib.contextmanager
def _lab_lock(cfg: LabConfig, progress: _Progress) -> Iterator[None]:
    """One lab command at a time per lab name (netns names derive from it)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    with _flock(LOCK_DIR / f"lab-{cfg.name}.lock", _LOCK_TIMEOUT, progress, f"lab {cfg.name}"):
        yield


@contextlib.contextmanager
def _flock(path: Path, timeout: float, progress: _Progress, what: str) -> Iterator[None]:
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                raise OperationFailed(
                    f"{what} is still locked by another process after {timeout:.0f} s ({path})"
                )
            if not waiting:
                progress.note(f"waiting for another k8s-provision process using {what} ({path})")
                waiting = True
            time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Progress:
    """Progress for the operator on stderr: a spinner on a terminal, plain lines otherwise
    (CI logs, tests)."""

    def __init__(self) -> None:
        self._console = Console(stderr=True, highlight=False)
        self._status: Status | None = None
        self._title = ""

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        started = time.monotonic()
        if self._console.is_terminal:
            with self._console.status(escape(title)) as status:
                self._status, self._title = status, title
                try:
                    yield
                finally:
                    self._status = None
            elapsed = time.monotonic() - started
            self._console.print(f"[green]✓[/green] {escape(title)} [dim]({elapsed:.1f} s)[/dim]")
        else:
            self._plain(f"{title} ...")
            yield
            self._plain(f"{title}: done in {time.monotonic() - started:.1f} s")

    def detail(self, text: str, *, milestone: bool = True) -> None:
        """Progress inside a step: always on a terminal's spinner, only milestones as lines."""
        if self._status is not None:
            self._status.update(escape(f"{self._title}: {text}"))
        elif milestone and not self._console.is_terminal:
            self._plain(f"  {text}")

    def note(self, text: str) -> None:
        if self._console.is_terminal:
            self._console.print(escape(text))
        else:
            self._plain(text)

    @staticmethod
    def _plain(text: str) -> None:
        print(f"lab: {text}", file=sys.stderr, flush=True)
