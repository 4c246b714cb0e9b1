"""Commands on lab hosts over SSH, through the lab's ssh_config (ProxyCommand, known_hosts)."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from k8s_provision.errors import OperationFailed
from k8s_provision.lab.config import LabConfig, make_config
from k8s_provision.lab.state import require_state


def ssh_argv(host: str, command: str | Sequence[str] = (), *, config: LabConfig) -> list[str]:
    """The ssh command line for a lab host (a sequence command is quoted for the remote shell)."""
    remote = command if isinstance(command, str) else shlex.join(command)
    return ["ssh", "-F", str(config.ssh_config), host, *(["--", remote] if remote else [])]


def ssh_run(
    host: str,
    command: str | Sequence[str],
    *,
    config: LabConfig | None = None,
    timeout: float = 120.0,
    check: bool = False,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command on a lab host over SSH; returns the CompletedProcess (255: SSH failed)."""
    cfg = config or make_config()
    require_state(cfg).host(host)
    argv = ssh_argv(host, command, config=cfg)
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, input=input, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise OperationFailed(f"`{shlex.join(argv)}` timed out after {timeout:.0f} s") from err
    if check and result.returncode != 0:
        raise OperationFailed(
            f"`{shlex.join(argv)}` exited {result.returncode}",
            details=(result.stderr or result.stdout).strip().splitlines()[-10:],
        )
    return result


def ssh_interactive(
    host: str, command: Sequence[str] = (), *, config: LabConfig | None = None
) -> int:
    """`lab ssh HOST [-- CMD]`: ssh attached to the caller's terminal; returns ssh's exit code."""
    cfg = config or make_config()
    require_state(cfg).host(host)
    return subprocess.call(ssh_argv(host, command, config=cfg))
