"""Filters over the configuration each service runs with (see k8s_provision.service_state);
each is documented in the .yml file of its name beside this one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from k8s_provision import service_state


def state_script(files: Sequence[Mapping[str, Any]], units: Sequence[str]) -> str:
    pairs = [(str(f["dest"]), str(f["component"])) for f in files]
    return service_state.state_script(service_state.unit_paths(pairs, units))


def states(stdout: str) -> dict[str, dict[str, Any]]:
    return {
        unit: {"applied": s.applied, "on_disk": s.on_disk, "stale": s.stale, "active": s.active}
        for unit, s in service_state.parse_states(stdout).items()
    }


def units_to_restart(states: Mapping[str, Mapping[str, Any]], units: Sequence[str]) -> list[str]:
    """The running units among `units`, in their order, whose record differs from the files."""
    return [
        unit
        for unit in units
        if unit in states and states[unit]["active"] == "active" and states[unit]["stale"]
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "config_state_script": state_script,
            "config_states": states,
            "config_record_script": service_state.record_script,
            "units_to_restart": units_to_restart,
        }
