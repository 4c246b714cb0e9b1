"""The state file of a lab: what it started (PIDs with start times, cgroups, base rootfs)."""

from __future__ import annotations

from k8s_provision.errors import UsageError
from k8s_provision.lab.config import LabConfig, LabState, state_from_json, state_to_json
from k8s_provision.lab.system import write_file


def load_state(cfg: LabConfig) -> LabState | None:
    try:
        text = cfg.state_file.read_text()
    except FileNotFoundError:
        return None
    return state_from_json(cfg, text)


def require_state(cfg: LabConfig) -> LabState:
    state = load_state(cfg)
    if state is None:
        raise UsageError(f"lab {cfg.name} is not up: run `k8s-provision lab up` first")
    return state


def save_state(state: LabState) -> None:
    write_file(state.config.state_file, state_to_json(state) + "\n")
