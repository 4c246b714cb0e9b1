"""The lab's model: where a lab lives (LabConfig), what runs (LabState), its host layout, and
the state file that records it."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Literal

from k8s_provision.errors import OperationFailed, UsageError

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


HostRunState = Literal["running", "off", "dead"]


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
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

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
    # The cached Kubernetes server binaries the hosts get, or None for an etcd-only lab.
    kubernetes: Path | None = None
    # k8s_security of the lab's inventory: tls (the default) or classic.
    security: str = "tls"

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


def state_to_json(state: LabState) -> str:
    return json.dumps(
        {
            "version": 1,
            "name": state.config.name,
            "base": str(state.base),
            "kubernetes": str(state.kubernetes) if state.kubernetes else None,
            "security": state.security,
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
    kubernetes = data.get("kubernetes")
    return LabState(
        config=config,
        base=Path(data["base"]),
        hosts=hosts,
        kubernetes=Path(kubernetes) if kubernetes else None,
        # A state file from before the TLS profile describes a plaintext lab.
        security=str(data.get("security", "classic")),
    )


def with_host(state: LabState, host: HostState) -> LabState:
    hosts = [h for h in state.hosts if h.name != host.name]
    ordered = sorted([*hosts, host], key=lambda h: host_order((h.name, h.address)))
    return replace(state, hosts=tuple(ordered))


def host_order(host: tuple[str, str]) -> int:
    return int(IPv4Address(host[1]))
