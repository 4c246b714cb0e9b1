from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from k8s_provision.model import ConnectionSettings, Host
from k8s_provision.ssh.target import LookupFor, resolve, split_jump
from k8s_provision.ssh_args import (
    ACCEPT_NEW_ENV,
    ansible_host_key_env,
    bastion_proxy_command,
    bastion_ssh_args,
    expand_tokens,
    host_key_override,
    host_key_refusal,
    parse_ssh_args,
)


def _host(address: str = "10.0.0.1", **connection: Any) -> Host:
    return Host(
        name="h",
        address=address,
        ip=address,
        roles=frozenset(),
        kube_node_name="h",
        flannel_iface="",
        connection=ConnectionSettings(**connection),
    )


def test_parse_ssh_args_reads_proxy_known_hosts_and_checking() -> None:
    opts = parse_ssh_args(
        "-o UserKnownHostsFile=/lab/known_hosts -o StrictHostKeyChecking=yes "
        '-o ProxyCommand="nsenter --net=/run/netns/x relay %h %p"',
        "-i /k/id -J admin@bastion:2200 -p 2222 -l admin",
    )
    assert opts.known_hosts_files == ("/lab/known_hosts",)
    assert opts.strict_host_key_checking is True
    assert opts.proxy_command == "nsenter --net=/run/netns/x relay %h %p"
    assert opts.proxy_jump == "admin@bastion:2200"
    assert opts.identity_files == ("/k/id",)
    assert (opts.port, opts.user) == (2222, "admin")


def test_first_value_wins_as_in_openssh() -> None:
    opts = parse_ssh_args("-o Port=2200", "-o Port=2300 -o StrictHostKeyChecking=no")
    assert opts.port == 2200
    assert parse_ssh_args(
        "-o StrictHostKeyChecking=yes -o StrictHostKeyChecking=no"
    ).strict_host_key_checking


def test_proxyjump_option_form_and_ipv6_hops() -> None:
    assert parse_ssh_args("-o ProxyJump=root@10.0.0.1").proxy_jump == "root@10.0.0.1"
    assert split_jump("admin@[fd00::1]:2200") == ("admin", "fd00::1", 2200)
    assert split_jump("fd00::1") == (None, "fd00::1", None)
    assert split_jump("bastion:22") == (None, "bastion", 22)


def test_expand_tokens_leaves_escaped_percent_for_an_inner_ssh() -> None:
    assert (
        expand_tokens("relay %h %p %r %%h", "10.0.0.1", 22, "root") == "relay 10.0.0.1 22 root %h"
    )


def test_bastion_proxy_command_carries_the_bastions_own_settings() -> None:
    bastion = _host(
        "192.168.10.1",
        user="admin",
        port=2200,
        private_key_file="/keys/id",
        ssh_common_args='-o UserKnownHostsFile=/lab/kh -o ProxyCommand="relay %h %p"',
    )
    command = bastion_proxy_command(bastion)
    words = shlex.split(command)
    assert words[:3] == ["ssh", "-o", "StrictHostKeyChecking=yes"]
    # -W reads host:port; brackets keep an IPv6 %h unambiguous (and are fine for names).
    assert words[3:7] == ["-W", "[%h]:%p", "-p", "2200"]
    assert words[7:9] == ["-i", "/keys/id"]
    assert "UserKnownHostsFile=/lab/kh" in words
    assert "ProxyCommand=relay %%h %%p" in words
    assert words[-1] == "admin@192.168.10.1"
    # Ansible splits ansible_ssh_extra_args with shlex: one -o and one ProxyCommand option.
    assert shlex.split(bastion_ssh_args(bastion)) == ["-o", "ProxyCommand=" + command]


def test_bastion_checking_cannot_be_turned_off_by_its_inventory() -> None:
    bastion = _host("fd00::1", ssh_common_args="-o StrictHostKeyChecking=no")
    words = shlex.split(bastion_proxy_command(bastion))
    assert words.index("StrictHostKeyChecking=yes") < words.index("-W")
    assert "StrictHostKeyChecking=no" not in words
    assert words[-1] == "fd00::1"


def test_ansible_env_pins_checking_first_and_keeps_the_configured_ssh_args(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ACCEPT_NEW_ENV, raising=False)
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[ssh_connection]\nssh_args = -o ControlMaster=auto -o ControlPersist=60s\n")
    env = ansible_host_key_env({"ANSIBLE_CONFIG": str(cfg), "ANSIBLE_HOST_KEY_CHECKING": "False"})
    assert env["ANSIBLE_SSH_ARGS"] == (
        "-o StrictHostKeyChecking=yes -o ControlMaster=auto -o ControlPersist=60s"
    )
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    # Without any configuration, ansible-core's own default ssh_args stay.
    assert ansible_host_key_env({})["ANSIBLE_SSH_ARGS"].endswith(
        "-C -o ControlMaster=auto -o ControlPersist=60s"
    )
    monkeypatch.setenv(ACCEPT_NEW_ENV, str(tmp_path / "kh"))
    args = shlex.split(ansible_host_key_env({"ANSIBLE_SSH_ARGS": "-C"})["ANSIBLE_SSH_ARGS"])
    assert args == [
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={tmp_path / 'kh'} ~/.ssh/known_hosts",
        "-C",
    ]


@pytest.mark.parametrize(
    ("variables", "found"),
    [
        ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=no"}, "ansible_ssh_common_args"),
        ({"ansible_ssh_extra_args": "-o UserKnownHostsFile=/dev/null"}, "ansible_ssh_extra_args"),
        ({"ansible_ssh_args": "-C -o 'StrictHostKeyChecking off'"}, "ansible_ssh_args"),
        ({"ansible_host_key_checking": False}, "ansible_host_key_checking=False"),
        ({"ansible_ssh_host_key_checking": "no"}, "ansible_ssh_host_key_checking=no"),
        ({"ansible_ssh_args": "-C -o ControlMaster=auto"}, "ansible_ssh_args without"),
        ({"ansible_ssh_args": "-C -o StrictHostKeyChecking=yes"}, None),
        ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=yes"}, None),
        ({"ansible_host_key_checking": True}, None),
        ({}, None),
    ],
)
def test_inventories_that_turn_checking_off_are_found(
    variables: dict[str, object], found: str | None
) -> None:
    what = host_key_override(variables)
    assert (what is None) if found is None else (what is not None and found in what)


def test_refusal_is_one_line_naming_file_host_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ACCEPT_NEW_ENV, raising=False)
    variables = {"ansible_ssh_common_args": "-o StrictHostKeyChecking=no"}
    line = host_key_refusal("inventories/prod.ini", "node1", variables)
    assert line is not None and "\n" not in line
    assert line.startswith("inventories/prod.ini: host node1: ansible_ssh_common_args")
    assert "--accept-new-host-keys FILE" in line
    monkeypatch.setenv(ACCEPT_NEW_ENV, str(tmp_path / "kh"))
    assert host_key_refusal("inventories/prod.ini", "node1", variables) is None


def _lookup(config: Mapping[str, Mapping[str, object]]) -> LookupFor:
    def lookup_for(address: str, config_file: str | None) -> dict[str, Any]:
        return {"hostname": address, **config.get(address, {})}

    return lookup_for


def test_inventory_settings_beat_ssh_config_which_beats_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ACCEPT_NEW_ENV, raising=False)
    config = {
        "db": {
            "hostname": "10.0.0.9",
            "user": "cfguser",
            "port": "2201",
            "proxyjump": "jump.example",
            "userknownhostsfile": "/cfg/kh",
        }
    }
    lookup = _lookup(config)
    plain = resolve(_host("db"), lookup)
    assert (plain.hostname, plain.user, plain.port) == ("10.0.0.9", "cfguser", 2201)
    assert plain.known_hosts_files[0] == "/cfg/kh"
    assert plain.gateway is not None and not isinstance(plain.gateway, str)
    assert plain.gateway.address == "jump.example"
    explicit = resolve(
        _host(
            "db",
            user="admin",
            port=22,
            ssh_common_args='-o UserKnownHostsFile=/inv/kh -o ProxyCommand="relay %h %p"',
        ),
        lookup,
    )
    assert (explicit.user, explicit.port, explicit.gateway) == ("admin", 22, "relay %h %p")
    assert explicit.known_hosts_files[0] == "/inv/kh"
    assert explicit.key_name == "10.0.0.9"


def test_the_inventory_bastion_beats_an_ssh_config_proxy() -> None:
    bastion = _host("192.168.10.1", user="admin")
    config = {"10.0.0.2": {"proxycommand": "nc %h %p"}}
    target = resolve(_host("10.0.0.2", via=bastion), _lookup(config))
    assert not isinstance(target.gateway, str) and target.gateway is not None
    assert (target.gateway.address, target.gateway.user) == ("192.168.10.1", "admin")


def test_ipv6_addresses_are_bracketed_where_a_port_follows() -> None:
    target = resolve(_host("fd00::2", port=2222), _lookup({}))
    assert target.where == "[fd00::2]:2222"
    assert target.key_name == "[fd00::2]:2222"
    assert resolve(_host("fd00::2"), _lookup({})).key_name == "fd00::2"


def test_proxycommand_none_in_the_inventory_means_direct_despite_ssh_config() -> None:
    config = {"10.0.0.2": {"proxycommand": "nc %h %p"}}
    host = _host("10.0.0.2", ssh_common_args="-o ProxyCommand=none")
    assert resolve(host, _lookup(config)).gateway is None
    assert resolve(_host("10.0.0.2"), _lookup(config)).gateway == "nc %h %p"
