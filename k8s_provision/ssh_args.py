"""OpenSSH options as the inventory gives them (ansible_ssh_common_args/extra_args), the
ProxyCommand that takes plain ssh (and so Ansible) through a bastion, and the host key policy
that the CLI's own SSH and every Ansible run share. No network and no fabric here: this module
is also imported inside Ansible by the k8s_provision.cluster.context lookup."""

from __future__ import annotations

import configparser
import functools
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k8s_provision.model import Host

_TOKEN_RE = re.compile(r"%(.)")

# The operator's explicit trust-on-first-use: new host keys are written to this known_hosts
# file (changed keys are still refused). Set by --accept-new-host-keys; an environment variable
# so that Ansible's children (the k8s_provision.cluster.context lookup) see the CLI's choice.
ACCEPT_NEW_ENV = "K8SP_ACCEPT_NEW_HOST_KEYS"

# ansible-core's default ssh_args, used when neither the environment nor ansible.cfg sets any.
ANSIBLE_DEFAULT_SSH_ARGS = "-C -o ControlMaster=auto -o ControlPersist=60s"

_OFF = ("no", "off", "false")


@dataclass(frozen=True)
class SshOptions:
    """The OpenSSH options the CLI's own SSH sessions honour, each the first one given (OpenSSH
    keeps the first value of an option, and Ansible puts common args before extra args)."""

    proxy_command: str | None = None
    proxy_jump: str | None = None
    known_hosts_files: tuple[str, ...] = ()
    global_known_hosts_files: tuple[str, ...] = ()
    # The inventory's StrictHostKeyChecking value as written (None: not given). Only read to
    # refuse an inventory that turns checking off; sessions always check.
    host_key_checking: str | None = None
    identity_files: tuple[str, ...] = ()
    user: str | None = None
    port: int | None = None
    config_file: str | None = None

    @property
    def strict_host_key_checking(self) -> bool:
        return (self.host_key_checking or "yes").lower() not in _OFF


def _words(*args: str | None) -> list[str]:
    words: list[str] = []
    for arg in args:
        if arg:
            words += shlex.split(arg)
    return words


@functools.lru_cache(maxsize=256)
def parse_ssh_args(*args: str | None) -> SshOptions:
    """Parse OpenSSH command-line options (-o Key=Value, -o Key Value, -J, -i, -l, -p, -F).
    Cached: every host of an inventory usually has the same args, and every SSH session and
    inventory check parses them (shlex costs milliseconds of the GIL-bound controller)."""
    words = _words(*args)
    options: dict[str, str] = {}
    flags: dict[str, str] = {}
    identities: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else ""
        if word.startswith("-o"):
            text = word[2:] if word != "-o" else value
            i += 1 if word != "-o" else 2
            key, sep, val = text.partition("=")
            if not sep:
                key, _, val = text.partition(" ")
            options.setdefault(key.strip().lower(), val.strip())
            continue
        if word in ("-J", "-i", "-l", "-p", "-F"):
            if word == "-i":
                identities.append(value)
            else:
                flags.setdefault(word, value)
            i += 2
            continue
        i += 1
    if "identityfile" in options:
        identities.append(options["identityfile"])
    port = flags.get("-p") or options.get("port", "")
    return SshOptions(
        proxy_command=options.get("proxycommand"),
        proxy_jump=options.get("proxyjump") or flags.get("-J"),
        known_hosts_files=_paths(options.get("userknownhostsfile")),
        global_known_hosts_files=_paths(options.get("globalknownhostsfile")),
        host_key_checking=options.get("stricthostkeychecking"),
        identity_files=tuple(os.path.expanduser(p) for p in identities),
        user=flags.get("-l") or options.get("user"),
        port=int(port) if port.isdigit() else None,
        config_file=os.path.expanduser(flags["-F"]) if flags.get("-F") else None,
    )


def _paths(value: str | None) -> tuple[str, ...]:
    return tuple(os.path.expanduser(p) for p in (value or "").split())


def expand_tokens(command: str, host: str, port: int, user: str) -> str:
    """OpenSSH's %h, %p, %r and %% in a ProxyCommand."""
    values = {"h": host, "p": str(port), "r": user, "%": "%"}
    return _TOKEN_RE.sub(lambda m: values.get(m.group(1), m.group(0)), command)


def bracket(address: str) -> str:
    """An IPv6 address in brackets, as host:port forms need it; names and IPv4 as they are."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def known_hosts_name(address: str, port: int) -> str:
    """The name a host's key is filed under in known_hosts (`[host]:port` off port 22)."""
    return address if port == 22 else f"[{address}]:{port}"


def accept_new_file() -> Path | None:
    value = os.environ.get(ACCEPT_NEW_ENV)
    return Path(value).expanduser().absolute() if value else None


def set_accept_new_file(path: Path | None) -> None:
    """What --accept-new-host-keys sets, for this process and the Ansible runs it starts."""
    if path is None:
        os.environ.pop(ACCEPT_NEW_ENV, None)
    else:
        os.environ[ACCEPT_NEW_ENV] = str(path.expanduser().absolute())


def host_key_options(accept_new: Path | None) -> list[str]:
    """The OpenSSH options that pin host key checking. They go first on every ssh command
    line, where OpenSSH's first-value-wins rule makes them beat the inventory's options,
    ansible.cfg, ANSIBLE_HOST_KEY_CHECKING and ~/.ssh/config alike."""
    if accept_new is None:
        return ["-o", "StrictHostKeyChecking=yes"]
    files = f"{accept_new} ~/.ssh/known_hosts"
    return ["-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={files}"]


def bastion_proxy_command(bastion: Host) -> str:
    """`ssh -W [%h]:%p` through the bastion, carrying the bastion's own user, port, key, known
    hosts and proxy. Options given on the ssh command line do not reach a ProxyJump child, so a
    ProxyCommand is what keeps host key checking on for the bastion too. %h is bracketed because
    -W reads host:port, which an IPv6 address would make ambiguous."""
    conn = bastion.connection
    options = parse_ssh_args(conn.ssh_common_args, conn.ssh_extra_args)
    words = ["ssh", *host_key_options(accept_new_file()), "-W", "[%h]:%p"]
    words += ["-p", str(conn.port or options.port or 22)]
    if conn.private_key_file:
        words += ["-i", conn.private_key_file]
    for path in options.known_hosts_files:
        words += ["-o", f"UserKnownHostsFile={path}"]
    if options.proxy_command:
        # %% survives the outer ssh's expansion as %, for the inner ssh to expand.
        words += ["-o", "ProxyCommand=" + options.proxy_command.replace("%", "%%")]
    user = conn.user or options.user
    words.append(f"{user}@{bastion.address}" if user else bastion.address)
    return " ".join(w if w == "[%h]:%p" else shlex.quote(w) for w in words)


def bastion_ssh_args(bastion: Host) -> str:
    """ansible_ssh_extra_args that send a host through the bastion."""
    return "-o " + shlex.quote("ProxyCommand=" + bastion_proxy_command(bastion))


def _configured_ssh_args(config_file: str | None) -> str | None:
    """ssh_args from the ansible.cfg the run reads, so pinning keeps its other options."""
    if not config_file or not Path(config_file).is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(config_file, encoding="utf-8")
    except configparser.Error:
        return None
    return parser.get("ssh_connection", "ssh_args", fallback=None)


def ansible_host_key_env(env: Mapping[str, str]) -> dict[str, str]:
    """Environment for an ansible-playbook child that pins host key checking whatever
    ANSIBLE_HOST_KEY_CHECKING, ANSIBLE_CONFIG or ~/.ssh/config say. `env` is the child's
    environment so far (with ANSIBLE_CONFIG already chosen); merge the result into it."""
    base = (
        env.get("ANSIBLE_SSH_ARGS")
        or _configured_ssh_args(env.get("ANSIBLE_CONFIG"))
        or ANSIBLE_DEFAULT_SSH_ARGS
    )
    pin = shlex.join(host_key_options(accept_new_file()))
    return {
        "ANSIBLE_SSH_ARGS": f"{pin} {base}",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_HOST_KEY_CHECKING": "True",
        # The paramiko connection plugin would otherwise add unknown keys when asked to.
        "ANSIBLE_PARAMIKO_HOST_KEY_AUTO_ADD": "False",
    }


# Inventory variables through which Ansible would connect without checking host keys.
_SSH_ARG_VARIABLES = ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args")
_CHECKING_VARIABLES = ("ansible_host_key_checking", "ansible_ssh_host_key_checking")


def host_key_override(variables: Mapping[str, Any]) -> str | None:
    """The variable (and setting) by which a host's inventory turns host key checking off, or
    None. `variables` are the host's variables as Ansible resolves them."""
    for name in _CHECKING_VARIABLES:
        value = variables.get(name)
        if value is not None and str(value).strip().lower() in (*_OFF, "0"):
            return f"{name}={value}"
    for name in _SSH_ARG_VARIABLES:
        text = variables.get(name)
        if not text:
            continue
        try:
            options = parse_ssh_args(str(text))
        except ValueError:
            continue  # unbalanced quotes: Ansible itself rejects them
        if not options.strict_host_key_checking:
            return f"{name} sets StrictHostKeyChecking={options.host_key_checking}"
        if name == "ansible_ssh_args" and options.host_key_checking is None:
            # It replaces the ssh_args that carry the pin (ansible_host_key_env), and then
            # ~/.ssh/config could turn checking off for this host.
            return f"{name} without -o StrictHostKeyChecking=yes replaces the pinned options"
        null = [p for p in options.known_hosts_files if os.path.realpath(p) == os.devnull]
        if null:
            return f"{name} sets UserKnownHostsFile={null[0]}"
    return None


def host_key_refusal(source: str, host: str, variables: Mapping[str, Any]) -> str | None:
    """One line refusing an inventory that turns host key checking off, or None when it does
    not, or when the operator accepted new keys into a file of their choosing."""
    what = host_key_override(variables)
    if what is None or accept_new_file() is not None:
        return None
    return (
        f"{source}: host {host}: {what} turns host key checking off; host keys are always"
        " checked: remove it, or pass --accept-new-host-keys FILE to accept new hosts' keys"
        " into FILE"
    )
