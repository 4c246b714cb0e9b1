"""Network namespaces: the lab bridge, one namespace per host, sockets opened inside them, and
the SSH relays and control masters that live in them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

from k8s_provision.lab.config import BRIDGE_ADDRESS, NETNS_DIR, SUBNET, LabConfig
from k8s_provision.lab.system import process_start_time, run, terminate

_CLONE_NEWNET = 0x40000000


def create_host_network(cfg: LabConfig, name: str, address: str) -> None:
    ns, lab_ns = cfg.host_ns(name), cfg.net_ns
    last_octet = int(IPv4Address(address)) & 0xFF
    # A fixed MAC per address: a host that powers back on looks like the same NIC to its peers.
    mac = f"02:6b:38:73:0a:{last_octet:02x}"
    run(["ip", "netns", "add", ns], f"create netns {ns}")
    veth = f"vh-{name}"  # in the lab netns, where names only need to be unique per lab
    peer = ["peer", "name", "eth0", "address", mac, "netns", ns]
    run(
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
        run(argv, f"configure {name}'s network")


def close_ssh_masters(cfg: LabConfig) -> None:
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


def kill_relays(cfg: LabConfig) -> None:
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
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        same_ns = (ns.st_dev, ns.st_ino) == (target.st_dev, target.st_ino)
        # Only relays enter the lab network (hosts have namespaces of their own).
        pid = int(proc.name)
        if same_ns and pid != os.getpid():
            start = process_start_time(pid)
            if start is not None:
                terminate(pid, start)


def netns_exists(name: str) -> bool:
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


def ssh_banner(netns: str, address: str) -> bool:
    """True once sshd answers on address:22 with its banner, seen from the lab network."""
    with _socket_in_netns(netns) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect((address, 22))
            return sock.recv(64).startswith(b"SSH-")
        except OSError:
            return False
