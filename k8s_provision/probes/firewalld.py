"""firewalld: whether it runs (`firewall-cmd --state`) and what its zone lets in
(`firewall-cmd --list-all`)."""

from __future__ import annotations

from dataclasses import dataclass

from k8s_provision.probes.base import Probe

# The ports of the services firewalld itself ships (/usr/lib/firewalld/services/*.xml) that
# open a port the cluster needs: `--list-all` names the service, not its ports.
SERVICE_PORTS = {
    "etcd-client": ("2379/tcp",),
    "etcd-server": ("2380/tcp",),
    "kubelet": ("10250/tcp",),
}


@dataclass(frozen=True)
class Zone:
    accept_all: bool  # the zone's target is ACCEPT
    opened: frozenset[str]  # PORT/PROTO specs open
    listing: str  # the output as printed, for evidence


def firewalld_open(list_all: str) -> tuple[bool, set[str]]:
    """(zone target is ACCEPT, the port/proto specs open) from `firewall-cmd --list-all`."""
    fields: dict[str, str] = {}
    for line in list_all.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    opened: set[str] = set()
    for spec in fields.get("ports", "").split():
        number, _, proto = spec.partition("/")
        low, _, high = number.partition("-")
        if low.isdigit():
            opened |= {f"{p}/{proto}" for p in range(int(low), int(high or low) + 1)}
    for service in fields.get("services", "").split():
        opened |= set(SERVICE_PORTS.get(service, ()))
    return fields.get("target", "").upper() == "ACCEPT", opened


def running() -> Probe[bool]:
    return Probe(
        "firewalld-state",
        "firewall-cmd --state",
        lambda out: out.exit_code == 0 and out.stdout.strip() == "running",
    )


def zone() -> Probe[Zone]:
    def parse(text: str) -> Zone:
        accept_all, opened = firewalld_open(text)
        return Zone(accept_all, frozenset(opened), text)

    return Probe("firewalld-list", "firewall-cmd --list-all", lambda out: parse(out.stdout))
