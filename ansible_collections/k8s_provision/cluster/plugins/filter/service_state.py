"""Filters over the configuration each service runs with (see k8s_provision.service_state);
each is documented in the .yml file of its name beside this one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8s_provision.cluster.plugins.plugin_utils.tool import tool_module


def _service_state() -> ModuleType:
    return tool_module("service_state", AnsibleFilterError)


def state_script(files: Sequence[Mapping[str, Any]], units: Sequence[str]) -> str:
    service_state = _service_state()
    pairs = [(str(f["dest"]), str(f["component"])) for f in files]
    return str(service_state.state_script(service_state.unit_paths(pairs, units)))


def states(stdout: str) -> dict[str, dict[str, Any]]:
    return {
        unit: {"applied": s.applied, "on_disk": s.on_disk, "stale": s.stale, "active": s.active}
        for unit, s in _service_state().parse_states(stdout).items()
    }


def record_script(unit: str, on_disk: str) -> str:
    return str(_service_state().record_script(unit, on_disk))


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
            "config_record_script": record_script,
            "units_to_restart": units_to_restart,
        }
