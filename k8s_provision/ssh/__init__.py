"""The CLI's own SSH (fabric on paramiko): sessions per host, all hosts in parallel, settings
as OpenSSH takes them from the inventory and ssh_config, host keys always checked."""

from __future__ import annotations

from k8s_provision.ssh.session import (
    BECOME_PASSWORD_ENV,
    COMMAND_TIMEOUT,
    CONNECT_TIMEOUT,
    HostSession,
    Result,
    become_password,
    on_hosts,
    set_become_password,
)

__all__ = [
    "BECOME_PASSWORD_ENV",
    "COMMAND_TIMEOUT",
    "CONNECT_TIMEOUT",
    "HostSession",
    "Result",
    "become_password",
    "on_hosts",
    "set_become_password",
]
