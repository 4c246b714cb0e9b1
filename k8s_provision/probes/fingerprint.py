"""Fingerprint probes: what site.yml converges on a host, read cheaply enough that a whole host
fits in one batched script (`k8s_provision.fastpath` builds the list and compares it with the
inventory). Each probe prints plain lines that its parser reads."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from k8s_provision.probes import files as file_probes
from k8s_provision.probes import systemd
from k8s_provision.probes.base import Output, Probe
from k8s_provision.probes.etcd import Endpoint, endpoint
from k8s_provision.probes.files import FileState


def files(paths: Sequence[str]) -> Probe[dict[str, FileState]]:
    """SHA-256, mode, owner and group of each path; a directory has no digest."""
    return Probe("fp-files", file_probes.script(paths), lambda out: file_probes.parse(out, paths))


def parse_packages(output: Output) -> frozenset[str]:
    """Installed names from dpkg's status words ("NAME install ok installed")."""
    return frozenset(
        line.split()[0]
        for line in output.stdout.splitlines()
        if line.rstrip().endswith(" install ok installed")
    )


def packages(query: str, names: Sequence[str]) -> Probe[frozenset[str]]:
    """`query` is the packages role's own query command for the family."""
    return Probe("fp-packages", f"{query} {' '.join(map(shlex.quote, names))}", parse_packages)


def units(names: Sequence[str]) -> Probe[dict[str, systemd.UnitState]]:
    """Load, active and enabled state of each unit, read as verify reads them."""
    return systemd.units(names, probe="fp-units")


@dataclass(frozen=True)
class Kernel:
    container: bool  # the host runs in a container, where kernel settings belong to its host
    sysctl: dict[str, str]  # key -> live value ("" when unreadable)
    modules: frozenset[str]  # of those asked for, the ones loaded


SYSCTL_ROOT = "/proc/sys/"
# sysctl's names swap /proc/sys's separators: net.ipv4.conf.eth0/100.forwarding is the file
# net/ipv4/conf/eth0.100/forwarding.
_SYSCTL_TO_PATH = str.maketrans("./", "/.")


def sysctl_path(key: str) -> str:
    return SYSCTL_ROOT + key.translate(_SYSCTL_TO_PATH)


def parse_kernel(output: Output) -> Kernel:
    values: dict[str, list[str]] = {}
    modules: set[str] = set()
    container = False
    for line in output.stdout.splitlines():
        if line.startswith(SYSCTL_ROOT):
            path, _, value = line.partition(":")
            key = path.removeprefix(SYSCTL_ROOT).translate(_SYSCTL_TO_PATH)
            values.setdefault(key, []).append(value)
            continue
        key, _, value = line.partition("=")
        if key == "@container":
            container = value.strip() not in ("", "none")
        elif key == "@module":
            modules.add(value.strip())
    sysctl = {key: "\n".join(lines).strip() for key, lines in values.items()}
    return Kernel(container, sysctl, frozenset(modules))


def kernel(keys: Sequence[str], modules: Sequence[str]) -> Probe[Kernel]:
    """Whether the host is a container, the live value of each sysctl key (one grep prints
    every file's lines after its path, where a `sysctl -n` per key cost a process each; an
    unreadable key prints nothing), and which of `modules` are loaded (/sys/module lists
    built-in ones too)."""
    paths = " ".join(shlex.quote(sysctl_path(k)) for k in dict.fromkeys(keys))
    loaded = " ".join(shlex.quote(m) for m in modules)
    read = f" grep -H '' -- {paths} 2>/dev/null;" if keys else ""
    return Probe(
        "fp-kernel",
        f'echo "@container=$(systemd-detect-virt -c 2>/dev/null)";{read}'
        f' for m in {loaded}; do [ -d "/sys/module/$m" ] && echo "@module=$m"; done; true',
        parse_kernel,
    )


def text(name: str, command: str) -> Probe[str | None]:
    """A command's stdout; None when it failed."""
    return Probe(name, command, lambda out: out.stdout if out.exit_code == 0 else None)


def lines(name: str, command: str) -> Probe[tuple[str, ...] | None]:
    """A command's stdout split on whitespace; None when it failed."""
    return Probe(
        name, command, lambda out: tuple(out.stdout.split()) if out.exit_code == 0 else None
    )


def flannel_key(url: Endpoint | str, key: str) -> Probe[str | None]:
    """The flannel network key as the flannel role reads it (etcdctl v2 `get`), trimmed; None
    when it is absent or etcd does not answer."""
    e = endpoint(url)
    return Probe(
        "fp-flannel-key",
        f"ETCDCTL_API=2 etcdctl{e.v2_tls} --endpoints={e.url} get {shlex.quote(key)}",
        lambda out: out.stdout.strip() if out.exit_code == 0 else None,
    )
