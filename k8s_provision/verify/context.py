"""The collected facts as the checks read them: per host, each probe's raw output or its
parsed value, and the state of the host's units."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from k8s_provision import facts
from k8s_provision.model import Cluster, Host
from k8s_provision.probes import HostFacts, Output, Probe, systemd
from k8s_provision.probes.systemd import UnitState
from k8s_provision.report import Check

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    cluster: Cluster
    facts: Mapping[str, HostFacts]

    def reachable(self, name: str) -> bool:
        got = self.facts.get(name)
        return got is not None and got.error is None

    def output(self, host: str, probe: str) -> Output | None:
        got = self.facts.get(host)
        return None if got is None else got.outputs.get(probe)

    def read(self, host: str, probe: Probe[T]) -> T | None:
        got = self.facts.get(host)
        return None if got is None else got.read(probe)

    def units(self, host: Host) -> dict[str, UnitState]:
        return self.read(host.name, systemd.units(facts.host_units(host))) or {}

    def unit(self, host: Host, unit: str) -> UnitState | None:
        return self.units(host).get(unit)

    def installed(self, host: Host, unit: str) -> bool:
        """Unknown unit state counts as installed: a check then fails rather than passing."""
        state = self.unit(host, unit)
        return state is None or state.installed


def not_installed(host: Host, check: str, unit: str) -> Check:
    return Check(host.name, check, "skip", f"{unit} is not installed on this host")
