"""How SSH reaches a host, resolved from its variables exactly as Ansible's ssh connection does.

Which variables set an option, and which of them wins, is read from ansible-core's own option
definitions for the `ssh` connection and the `sudo` become plugin (their `vars:` lists, where
the last one defined wins, as in ansible's ConfigManager), so the legacy names
(`ansible_ssh_host`, `ansible_ssh_user`, `ansible_ssh_pass`, ...) count exactly as Ansible counts
them, in whichever release is installed."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from k8s_provision.model import ConnectionSettings

# ConnectionSettings field -> (plugin type, plugin name, option name).
_OPTIONS: dict[str, tuple[str, str, str]] = {
    "address": ("connection", "ssh", "host"),
    "user": ("connection", "ssh", "remote_user"),
    "port": ("connection", "ssh", "port"),
    "password": ("connection", "ssh", "password"),
    "private_key_file": ("connection", "ssh", "private_key_file"),
    "ssh_common_args": ("connection", "ssh", "ssh_common_args"),
    "ssh_extra_args": ("connection", "ssh", "ssh_extra_args"),
    "ssh_args": ("connection", "ssh", "ssh_args"),
    "host_key_checking": ("connection", "ssh", "host_key_checking"),
    "timeout": ("connection", "ssh", "timeout"),
    "control_path_dir": ("connection", "ssh", "control_path_dir"),
    "become_user": ("become", "sudo", "become_user"),
}
# Play-level variables without a plugin option of their own.
_PLAIN = {
    "become": "ansible_become",
    "become_method": "ansible_become_method",
    "python_interpreter": "ansible_python_interpreter",
    "connection_type": "ansible_connection",
}
# `ansible_host` entries like "delegated_vars['ansible_host']" are not inventory variables, and
# inventory_hostname is the fallback the model applies itself.
_VARIABLE_RE = re.compile(r"^ansible_[a-z0-9_]+$")
_TRUE = {"true", "yes", "on", "1"}


@functools.cache
def option_variables() -> dict[str, tuple[str, ...]]:
    """ConnectionSettings field -> the inventory variables that set it, in Ansible's order."""
    from ansible import constants as C
    from ansible.plugins.loader import become_loader, connection_loader

    # Loading the plugin class registers its option definitions with the config manager.
    connection_loader.get("ssh", class_only=True)
    become_loader.get("sudo", class_only=True)
    names: dict[str, tuple[str, ...]] = {}
    for field, (kind, plugin, option) in _OPTIONS.items():
        definition = C.config.get_configuration_definitions(kind, plugin).get(option, {})
        entries = [str(entry["name"]) for entry in definition.get("vars", [])]
        names[field] = tuple(n for n in entries if _VARIABLE_RE.match(n))
    for field, variable in _PLAIN.items():
        names[field] = (variable,)
    return names


@functools.cache
def connection_variable_names() -> tuple[str, ...]:
    """Every variable Ansible's ssh connection, sudo become and play context read: real
    Ansible variables, never typos of ours."""
    from ansible import constants as C

    option_variables()  # registers the plugins' definitions
    found = [name for names in option_variables().values() for name in names]
    for kind, plugin in (("connection", "ssh"), ("become", "sudo")):
        for definition in C.config.get_configuration_definitions(kind, plugin).values():
            found += [str(entry["name"]) for entry in definition.get("vars", [])]
    for names in C.MAGIC_VARIABLE_MAPPING.values():
        found += [str(name) for name in names]
    return tuple(dict.fromkeys(n for n in found if _VARIABLE_RE.match(n)))


def resolve(vars_: Mapping[str, Any]) -> dict[str, Any]:
    """Field -> raw value, where the last variable defined in Ansible's list wins (ansible's
    ConfigManager._loop_entries); fields no variable sets are left out."""
    raw: dict[str, Any] = {}
    for field, names in option_variables().items():
        for name in names:
            if name in vars_ and vars_[name] is not None:
                raw[field] = vars_[name]
    return raw


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _flag(value: Any) -> bool | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE


def _number(value: Any) -> int | None:
    text = _text(value)
    return int(text) if text is not None and text.isdigit() and len(text) < 10 else None


def settings(raw: Mapping[str, Any]) -> ConnectionSettings:
    """ConnectionSettings from `resolve`'s output (values already validated by the caller)."""
    return ConnectionSettings(
        user=_text(raw.get("user")),
        port=_number(raw.get("port")),
        password=_text(raw.get("password")),
        private_key_file=_text(raw.get("private_key_file")),
        ssh_common_args=_text(raw.get("ssh_common_args")),
        ssh_extra_args=_text(raw.get("ssh_extra_args")),
        ssh_args=_text(raw.get("ssh_args")),
        host_key_checking=_flag(raw.get("host_key_checking")),
        timeout=_number(raw.get("timeout")),
        control_path_dir=_text(raw.get("control_path_dir")),
        connection_type=_text(raw.get("connection_type")),
        become=bool(_flag(raw.get("become"))),
        become_method=_text(raw.get("become_method")),
        become_user=_text(raw.get("become_user")),
        python_interpreter=_text(raw.get("python_interpreter")),
    )
