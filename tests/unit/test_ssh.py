from __future__ import annotations

from k8s_provision.model import ConnectionSettings, Host
from k8s_provision.ssh import HostSession, parse_ssh_args


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
