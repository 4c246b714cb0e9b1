"""Lab helpers only tests need: power one host off and on (fault tests), and run the
collection's site playbook with plain ansible-playbook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from k8s_provision.lab.api import require_environment
from k8s_provision.lab.config import LabConfig, LabState, make_config, with_host
from k8s_provision.lab.machines import start_hosts, stop_host, wait_ready
from k8s_provision.lab.state import require_state, save_state
from k8s_provision.lab.system import Progress, alive, lab_lock


def power_off(host: str, *, config: LabConfig | None = None) -> LabState:
    """Stop one host's container, like pulling its plug; its disk stays. Others are untouched."""
    cfg = config or make_config()
    require_environment()
    with lab_lock(cfg, Progress()):
        state = require_state(cfg)
        stopped = stop_host(cfg, state.host(host))
        state = with_host(state, stopped)
        save_state(state)
        return state


def power_on(host: str, *, config: LabConfig | None = None) -> LabState:
    """Boot one powered-off (or dead) host again with its disk; a running host is left alone."""
    cfg = config or make_config()
    require_environment()
    progress = Progress()
    with lab_lock(cfg, progress):
        state = require_state(cfg)
        current = state.host(host)
        if alive(current):
            return state
        state = with_host(state, stop_host(cfg, current))
        state = start_hosts(cfg, state, [(current.name, current.address)], progress)
        wait_ready(cfg, state, [host], progress)
        return state


def site_playbook(state: LabState, *args: str) -> subprocess.CompletedProcess[str]:
    """`ansible-playbook k8s_provision.cluster.site` on the lab, as a user would run it, with
    `args` (a limit, extra vars) added."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(state.inventory),
            "k8s_provision.cluster.site",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent.parent,
        timeout=900,
        check=False,
    )


def run_site(state: LabState) -> subprocess.CompletedProcess[str]:
    """`site_playbook` without arguments; asserts that it succeeded."""
    result = site_playbook(state)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return result
