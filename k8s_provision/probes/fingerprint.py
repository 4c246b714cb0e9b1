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


@dataclass(frozen=True)
class UnitRun:
    load: str
    active: str
    file_state: str
    started: int = 0  # systemd.START_PROPERTY: when the main process was executed


def parse_units(output: Output) -> dict[str, UnitRun]:
    runs: dict[str, UnitRun] = {}
    unit, props = "", dict[str, str]()
    for line in [*output.stdout.splitlines(), "@unit "]:
        if line.startswith("@unit "):
            if unit:
                runs[unit] = UnitRun(
                    props.get("LoadState", ""),
                    props.get("ActiveState", ""),
                    props.get("UnitFileState", ""),
                    systemd.started(props),
                )
            unit, props = line.removeprefix("@unit ").strip(), {}
        else:
            key, _, value = line.partition("=")
            props[key] = value.strip()
    return runs


def units(names: Sequence[str]) -> Probe[dict[str, UnitRun]]:
    """Load, active and enabled state of each unit."""
    quoted = " ".join(shlex.quote(n) for n in names)
    return Probe(
        "fp-units",
        f'for u in {quoted}; do echo "@unit $u";'
        " systemctl show -p LoadState -p ActiveState -p UnitFileState"
        f' -p {systemd.START_PROPERTY} -- "$u.service"; done',
        parse_units,
    )


@dataclass(frozen=True)
class Kernel:
    container: bool  # the host runs in a container, where kernel settings belong to its host
    sysctl: dict[str, str]  # key -> live value ("" when unreadable)
    modules: frozenset[str]  # of those asked for, the ones loaded


def parse_kernel(output: Output) -> Kernel:
    values: dict[str, str] = {}
    modules: set[str] = set()
    container = False
    for line in output.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "@container":
            container = value.strip() not in ("", "none")
        elif key == "@module":
            modules.add(value.strip())
        elif key:
            values[key.strip()] = value.strip()
    return Kernel(container, values, frozenset(modules))


def kernel(keys: Sequence[str], modules: Sequence[str]) -> Probe[Kernel]:
    """Whether the host is a container, the live value of each sysctl key, and which of
    `modules` are loaded (/sys/module lists built-in ones too)."""
    loop = " ".join(shlex.quote(k) for k in keys)
    loaded = " ".join(shlex.quote(m) for m in modules)
    return Probe(
        "fp-kernel",
        'echo "@container=$(systemd-detect-virt -c 2>/dev/null)";'
        f' for k in {loop}; do echo "$k=$(sysctl -n "$k" 2>/dev/null)"; done;'
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
