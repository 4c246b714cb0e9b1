"""The check of one systemd unit of a host's roles."""

from __future__ import annotations

from k8s_provision.model import Host
from k8s_provision.probes.systemd import UnitState
from k8s_provision.report import Check
from k8s_provision.verify.context import not_installed


def unit_check(host: Host, unit: str, state: UnitState | None, error: str = "") -> Check:
    name = f"unit:{unit}"
    if state is None:
        return Check(host.name, name, "fail", f"systemctl show failed: {error or 'no output'}")
    if not state.installed:
        return not_installed(host, name, unit)
    if state.load == "masked":
        return Check(host.name, name, "fail", f"{unit} is masked: systemctl unmask {unit}")
    if state.load != "loaded":
        return Check(host.name, name, "fail", f"unit file {state.load}: systemctl status {unit}")
    if state.active == "active":
        boot = "" if state.file_state in ("enabled", "static", "") else ", not enabled at boot"
        return Check(host.name, name, "pass", f"active ({state.sub}){boot}")
    return Check(
        host.name,
        name,
        "fail",
        f"{unit} is {state.active} ({state.sub}); see journalctl -u {unit}",
    )
