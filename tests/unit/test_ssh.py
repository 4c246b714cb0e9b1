from __future__ import annotations

import shlex

from k8s_provision.model import ConnectionSettings, Host
from k8s_provision.ssh import HostSession
from k8s_provision.ssh_args import (
    bastion_proxy_command,
    bastion_ssh_args,
    expand_tokens,
    parse_ssh_args,
)


def test_parse_ssh_args_reads_proxy_known_hosts_and_checking() -> None:
    opts = parse_ssh_args(
        "-o UserKnownHostsFile=/lab/known_hosts -o StrictHostKeyChecking=yes "
        '-o ProxyCommand="nsenter --net=/run/netns/x relay %h %p"',
        "-i /k/id -J admin@bastion:2200",
    )
    assert opts.known_hosts_files == ("/lab/known_hosts",)
    assert opts.strict_host_key_checking is True
    assert opts.proxy_command == "nsenter --net=/run/netns/x relay %h %p"
    assert opts.proxy_jump == "admin@bastion:2200"
    assert opts.identity_files == ("/k/id",)


def test_host_key_checking_is_on_by_default() -> None:
    assert parse_ssh_args(None).strict_host_key_checking is True
    assert parse_ssh_args("-o StrictHostKeyChecking=no").strict_host_key_checking is False


def test_proxyjump_option_form() -> None:
    assert parse_ssh_args("-o ProxyJump=root@10.0.0.1").proxy_jump == "root@10.0.0.1"


def _host(user: str | None, become: bool) -> Host:
    return Host(
        name="h",
        address="10.0.0.1",
        ip="10.0.0.1",
        roles=frozenset(),
        kube_node_name="h",
        flannel_iface="",
        connection=ConnectionSettings(user=user, become=become),
    )


def test_become_wraps_in_noninteractive_sudo(monkeypatch: object) -> None:
    assert HostSession(_host("centos", True))._wrap("id -u", None) == "sudo -n sh -c 'id -u'"
    assert HostSession(_host("root", True))._wrap("id -u", None) == "id -u"
    assert HostSession(_host("centos", False))._wrap("id -u", None) == "id -u"


def test_unreachable_host_is_a_result_not_an_exception() -> None:
    host = Host(
        name="h",
        address="127.0.0.1",
        ip="127.0.0.1",
        roles=frozenset(),
        kube_node_name="h",
        flannel_iface="",
        connection=ConnectionSettings(port=1),
    )
    result = HostSession(host, timeout=2).run("true")
    assert not result.ok
    assert result.exit_code is None
    assert result.error is not None and "127.0.0.1:1" in result.error


def test_expand_tokens_leaves_escaped_percent_for_an_inner_ssh() -> None:
    assert (
        expand_tokens("relay %h %p %r %%h", "10.0.0.1", 22, "root") == "relay 10.0.0.1 22 root %h"
    )


def test_bastion_proxy_command_carries_the_bastions_own_settings() -> None:
    bastion = Host(
        name="bastion",
        address="192.168.10.1",
        ip="",
        roles=frozenset(),
        kube_node_name="",
        flannel_iface="",
        connection=ConnectionSettings(
            user="admin",
            port=2200,
            private_key_file="/keys/id",
            ssh_common_args='-o UserKnownHostsFile=/lab/kh -o ProxyCommand="relay %h %p"',
        ),
    )
    command = bastion_proxy_command(bastion)
    words = shlex.split(command)
    assert words[:5] == ["ssh", "-W", "%h:%p", "-p", "2200"]
    assert words[5:7] == ["-i", "/keys/id"]
    assert "UserKnownHostsFile=/lab/kh" in words
    assert "StrictHostKeyChecking=yes" in words
    assert "ProxyCommand=relay %%h %%p" in words
    assert words[-1] == "admin@192.168.10.1"
    # Ansible splits ansible_ssh_extra_args with shlex: one -o and one ProxyCommand option.
    assert shlex.split(bastion_ssh_args(bastion)) == ["-o", "ProxyCommand=" + command]
