"""iptables: `iptables-save` read into the filter table, and whether a packet from another
cluster host reaches a port (each rule matched only as far as this reading models it: a rule
it cannot judge never counts as the one that drops)."""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from k8s_provision.probes.base import Output, Probe


@dataclass(frozen=True)
class Rule:
    chain: str
    line: str  # as iptables-save prints it, "-A CHAIN ..."
    proto: str | None = None
    sources: tuple[str, ...] = ()
    destinations: tuple[str, ...] = ()
    in_iface: str | None = None
    dports: tuple[tuple[int, int], ...] | None = None
    states: tuple[str, ...] | None = None
    certain: bool = True  # False: a match this reading does not model (then never "drops")
    target: str | None = None
    goto: bool = False


@dataclass(frozen=True)
class Packet:
    proto: str
    port: int
    source: str
    destination: str


_PROTOCOLS = {"6": "tcp", "17": "udp"}
_IGNORED_MATCH_OPTIONS = {"--comment"}


def _port_ranges(text: str) -> tuple[tuple[int, int], ...]:
    ranges = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        ranges.append((int(low or 0), int(high or low or 65535)))
    return tuple(ranges)


def parse_rule(line: str) -> Rule:
    words = shlex.split(line)
    chain = words[1]
    values: dict[str, Any] = {"certain": True}
    i = 2
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else ""
        if word in ("-j", "--jump", "-g", "--goto"):
            values["target"], values["goto"] = value, word in ("-g", "--goto")
            break  # what follows are the target's own options
        if word == "!":
            values["certain"] = False
            i += 1
            continue
        i += 2
        if word in ("-p", "--protocol"):
            values["proto"] = _PROTOCOLS.get(value, value.lower())
        elif word in ("-s", "--source"):
            values["sources"] = tuple(value.split(","))
        elif word in ("-d", "--destination"):
            values["destinations"] = tuple(value.split(","))
        elif word in ("-i", "--in-interface"):
            values["in_iface"] = value
        elif word == "-m":
            continue
        elif word in ("--dport", "--dports", "--destination-port", "--destination-ports"):
            try:
                values["dports"] = _port_ranges(value)
            except ValueError:
                values["certain"] = False
        elif word in ("--state", "--ctstate"):
            values["states"] = tuple(value.split(","))
        elif word in _IGNORED_MATCH_OPTIONS:
            continue
        else:
            values["certain"] = False
            if not value or value.startswith("-"):
                i -= 1  # an option without a value
    return Rule(chain=chain, line=line, **values)


def _in_networks(address: str, networks: Sequence[str]) -> bool:
    ip = ipaddress.ip_address(address)
    for net in networks:
        try:
            if ip in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False


def rule_matches(rule: Rule, packet: Packet) -> bool | None:
    """True or False when the rule surely does or does not match; None when unsure."""
    if rule.proto not in (None, "all", packet.proto):
        return False
    if rule.sources and not _in_networks(packet.source, rule.sources):
        return False
    if rule.destinations and not _in_networks(packet.destination, rule.destinations):
        return False
    if rule.in_iface == "lo":
        return False  # the packet comes from another host
    if rule.dports is not None and not any(lo <= packet.port <= hi for lo, hi in rule.dports):
        return False
    if rule.states is not None and "NEW" not in rule.states:
        return False
    return True if rule.certain else None


@dataclass(frozen=True)
class Firewall:
    policies: Mapping[str, str]
    chains: Mapping[str, tuple[Rule, ...]]


def parse_iptables(text: str) -> Firewall:
    """The filter table of `iptables-save` output."""
    policies: dict[str, str] = {}
    chains: dict[str, list[Rule]] = {}
    table = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:]
        elif table != "filter":
            continue
        elif line.startswith(":"):
            name, policy = [*line[1:].split(), "-"][:2]
            policies[name] = policy
            chains.setdefault(name, [])
        elif line.startswith("-A "):
            try:
                rule = parse_rule(line)
            except (ValueError, IndexError):
                continue
            chains.setdefault(rule.chain, []).append(rule)
    return Firewall(policies, {name: tuple(rules) for name, rules in chains.items()})


def _walk(
    firewall: Firewall, chain: str, packet: Packet, depth: int = 0
) -> tuple[str, Rule | None]:
    """('accept'|'drop'|'return'|'unknown', the rule that decided)."""
    if depth > 20:
        return "unknown", None
    for rule in firewall.chains.get(chain, ()):
        matched = rule_matches(rule, packet)
        if matched is False:
            continue
        target = rule.target or ""
        if target == "ACCEPT":
            return "accept", rule  # an uncertain ACCEPT may let it in: never claim a drop
        if target in ("DROP", "REJECT"):
            if matched:
                return "drop", rule
            continue
        if target == "RETURN":
            return ("return", rule) if matched else ("unknown", rule)
        if target in firewall.chains:
            verdict, decider = _walk(firewall, target, packet, depth + 1)
            if verdict == "return" and rule.goto and matched:
                return "return", decider
            if verdict == "accept" or (matched and verdict in ("drop", "unknown")):
                return verdict, decider
    return "return", None


def blocked_ports(
    firewall: Firewall, ports: Sequence[str], destination: str, sources: Sequence[str]
) -> dict[str, Rule | None]:
    """{port: the rule that drops it (None: the INPUT policy)} for packets from `sources`."""
    blocked: dict[str, Rule | None] = {}
    for spec in ports:
        port, _, proto = spec.partition("/")
        for source in sources:
            verdict, rule = _walk(firewall, "INPUT", Packet(proto, int(port), source, destination))
            if verdict == "return" and firewall.policies.get("INPUT") == "DROP":
                verdict, rule = "drop", None
            if verdict == "drop":
                blocked[spec] = rule
                break
    return blocked


def rules() -> Probe[Firewall | None]:
    """The filter table; None when iptables-save failed."""

    def parse(output: Output) -> Firewall | None:
        return parse_iptables(output.stdout) if output.exit_code == 0 else None

    return Probe("iptables-save", "iptables-save", parse)
