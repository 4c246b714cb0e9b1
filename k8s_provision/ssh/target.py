"""Where and how the CLI's SSH reaches one host, each setting taken as OpenSSH takes it when
Ansible runs it: OpenSSH keeps the first value given, and Ansible's command line puts the
inventory's user, port and key first, then ansible_ssh_common_args, then ansible_ssh_extra_args;
~/.ssh/config (or the file of a `-F`) comes after the command line, and OpenSSH's defaults
last. The bastion of the inventory's `bastion` group is passed on Ansible's command line, so
it too beats a ProxyJump/ProxyCommand from ~/.ssh/config. No network here."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from k8s_provision.model import Host
from k8s_provision.ssh_args import (
    SshOptions,
    accept_new_file,
    bracket,
    known_hosts_name,
    parse_ssh_args,
)

# OpenSSH's defaults when neither the command line nor ssh_config names the files.
USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


@dataclass(frozen=True)
class Target:
    address: str  # as the inventory gives it; ssh_config's Host patterns match this
    hostname: str  # after ssh_config's HostName
    port: int
    user: str
    key_files: tuple[str, ...]
    look_for_keys: bool  # OpenSSH tries ~/.ssh/id_* only when no IdentityFile is given
    # How to get there: a ProxyCommand (with %h %p %r), a host to tunnel through, or directly.
    gateway: str | Target | None
    known_hosts_files: tuple[str, ...]
    config_file: str | None  # a `-F` file replacing ~/.ssh/config and /etc/ssh/ssh_config

    @property
    def where(self) -> str:
        return f"{bracket(self.hostname)}:{self.port}"

    @property
    def key_name(self) -> str:
        return known_hosts_name(self.hostname, self.port)


Lookup = dict[str, Any]
# ssh_config's answer for an address (paramiko's SSHConfig.lookup), from ~/.ssh/config and
# /etc/ssh/ssh_config, or from the given `-F` file.
LookupFor = Callable[[str, "str | None"], Lookup]


def resolve(host: Host, lookup_for: LookupFor) -> Target:
    conn = host.connection
    options = parse_ssh_args(conn.ssh_common_args, conn.ssh_extra_args)
    lookup = lookup_for(host.address, options.config_file)
    gateway: str | Target | None
    if options.proxy_command or options.proxy_jump:
        gateway = _own_gateway(options, options, conn.private_key_file, lookup_for)
    elif conn.via is not None:
        gateway = resolve(conn.via, lookup_for)
    else:
        gateway = _own_gateway(_from_config(lookup), options, conn.private_key_file, lookup_for)
    keys = [k for k in (conn.private_key_file, *options.identity_files) if k]
    return _target(
        host.address,
        lookup,
        user=conn.user or options.user,
        port=conn.port or options.port,
        keys=keys,
        gateway=gateway,
        options=options,
    )


def _from_config(lookup: Lookup) -> SshOptions:
    return SshOptions(proxy_command=lookup.get("proxycommand"), proxy_jump=lookup.get("proxyjump"))


def _own_gateway(
    proxy: SshOptions, options: SshOptions, key: str | None, lookup_for: LookupFor
) -> str | Target | None:
    if proxy.proxy_command:
        # `ProxyCommand none` given first means: connect directly, whatever comes later.
        return None if proxy.proxy_command.lower() == "none" else proxy.proxy_command
    if not proxy.proxy_jump or proxy.proxy_jump.lower() == "none":
        return None
    # ProxyJump a,b: reach a, through a reach b, through b the host. Each hop keeps the
    # host's key and known_hosts files, so its key is checked the same way.
    gateway: Target | None = None
    for hop in proxy.proxy_jump.split(","):
        user, address, port = split_jump(hop)
        gateway = _target(
            address,
            lookup_for(address, options.config_file),
            user=user,
            port=port,
            keys=[k for k in (key, *options.identity_files) if k],
            gateway=gateway,
            options=options,
        )
    return gateway


def split_jump(spec: str) -> tuple[str | None, str, int | None]:
    """[user@]host[:port], with an IPv6 host in brackets."""
    user, _, rest = spec.strip().rpartition("@")
    if rest.startswith("["):
        address, _, tail = rest[1:].partition("]")
        port = tail.lstrip(":")
    elif rest.count(":") == 1:
        address, _, port = rest.partition(":")
    else:
        address, port = rest, ""
    return user or None, address, int(port) if port.isdigit() else None


def _target(
    address: str,
    lookup: Lookup,
    *,
    user: str | None,
    port: int | None,
    keys: list[str],
    gateway: str | Target | None,
    options: SshOptions,
) -> Target:
    config_keys = lookup.get("identityfile") or []
    accept_into = accept_new_file()
    if accept_into is not None:
        # As Ansible's pinned options say: new keys go to that file, read with the user's own.
        user_files: tuple[str, ...] = (str(accept_into), "~/.ssh/known_hosts")
    else:
        user_files = options.known_hosts_files or _split(lookup.get("userknownhostsfile"))
        user_files = user_files or USER_KNOWN_HOSTS
    global_files = options.global_known_hosts_files or _split(lookup.get("globalknownhostsfile"))
    files = (*user_files, *(global_files or GLOBAL_KNOWN_HOSTS))
    return Target(
        address=address,
        hostname=str(lookup.get("hostname") or address),
        port=int(port or lookup.get("port") or 22),
        user=str(user or lookup.get("user") or getpass.getuser()),
        key_files=tuple(os.path.expanduser(k) for k in keys),
        look_for_keys=not keys and not config_keys,
        gateway=gateway,
        known_hosts_files=tuple(os.path.expanduser(f) for f in files),
        config_file=options.config_file,
    )


def _split(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    words = value if isinstance(value, list) else str(value).split()
    return tuple(str(w) for w in words)
