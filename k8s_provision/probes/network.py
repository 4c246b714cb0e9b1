"""Sockets and interfaces: listening TCP ports (`ss -ltn`), docker0's address, `ip addr` and
`ip route`."""

from __future__ import annotations

import ipaddress

from k8s_provision.probes.base import Output, Probe, raw


def listeners(ss_output: str, port: int) -> list[str]:
    """Local addresses listening on TCP `port` in `ss -ltn` output."""
    found = []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] != "LISTEN":
            continue
        address, _, local_port = fields[3].rpartition(":")
        if local_port == str(port):
            found.append(address.strip("[]").partition("%")[0])
    return found


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # "*" and other wildcards
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def listening() -> Probe[str | None]:
    """`ss -ltn`'s output (read with `listeners`); None when ss failed."""
    return Probe("listen", "ss -ltn", lambda out: out.stdout if out.exit_code == 0 else None)


def parse_docker0(text: str) -> ipaddress.IPv4Interface | None:
    """docker0's IPv4 interface from `ip -o -4 addr show dev docker0`."""
    words = text.split()
    for i, word in enumerate(words[:-1]):
        if word == "inet":
            try:
                return ipaddress.IPv4Interface(words[i + 1])
            except ValueError:
                return None
    return None


def docker0() -> Probe[Output]:
    """Raw: the check says why docker0 has no address from the exit code and stderr, and reads
    the address with `parse_docker0`."""
    return Probe("docker0", "ip -o -4 addr show dev docker0", raw)


def ip_addr() -> Probe[Output]:
    return Probe("ip-addr", "ip addr", raw)


def ip_route() -> Probe[Output]:
    return Probe("ip-route", "ip route", raw)
