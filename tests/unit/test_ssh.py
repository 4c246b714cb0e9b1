"""The CLI's SSH against real SSH servers in this process (tests/unit/sshd.py)."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from k8s_provision import lab
from k8s_provision.model import ConnectionSettings, Host
from k8s_provision.ssh import HostSession, on_hosts, tcp
from k8s_provision.ssh import session as session_module
from k8s_provision.ssh_args import ACCEPT_NEW_ENV, ansible_host_key_env
from tests.unit.sshd import SshServer, ssh_server, write_key

USER = getpass.getuser()


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's own ~/.ssh (config, known_hosts) stays out of these tests."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(ACCEPT_NEW_ENV, raising=False)


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, paramiko.PKey]:
    path = tmp_path / "id_ecdsa"
    return path, write_key(path)


@pytest.fixture
def server(key: tuple[Path, paramiko.PKey]) -> Iterator[SshServer]:
    with ssh_server(key[1], USER) as srv:
        yield srv


def _host(srv: SshServer, key: Path, known: Path, name: str = "node1", **extra: Any) -> Host:
    settings: dict[str, Any] = {
        "user": USER,
        "port": srv.port,
        "private_key_file": str(key),
        "ssh_common_args": f"-o UserKnownHostsFile={known}",
    }
    settings.update(extra)
    return Host(
        name=name,
        address=srv.address,
        ip=srv.address,
        roles=frozenset(),
        kube_node_name=name,
        flannel_iface="",
        connection=ConnectionSettings(**settings),
    )


def _known(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _through_relay(known: Path) -> str:
    """ssh args that reach the server through the lab's relay, as lab hosts are reached."""
    return f'-o UserKnownHostsFile={known} -o ProxyCommand="{lab.relay_command()}"'


def test_runs_commands_and_reports_exit_codes_and_streams(
    tmp_path: Path, server: SshServer, key: tuple[Path, paramiko.PKey]
) -> None:
    host = _host(server, key[0], _known(tmp_path, server.known_hosts_line()))
    session = HostSession(host)
    try:
        result = session.run("echo out; echo err >&2; exit 3")
        # stdin reaches end of file at once: `cat` returns instead of waiting for input.
        assert session.run("cat", timeout=5).ok
    finally:
        session.close()
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.error is None
    assert server.connections == 1  # both commands used one connection


def test_large_output_on_both_streams_at_once_and_stdin_fed_then_closed(
    tmp_path: Path, server: SshServer, key: tuple[Path, paramiko.PKey]
) -> None:
    """Both streams are read as they come: megabytes on each, beyond the channel's window,
    arrive whole. A sudo password reaches stdin, followed by end of file."""
    host = _host(server, key[0], _known(tmp_path, server.known_hosts_line()))
    session = HostSession(host)
    both = "(yes out | head -c 3000000) & (yes err | head -c 3000000 >&2); wait; printf '\\377'"
    try:
        result = session.run(both, timeout=60)
        fed = session_module._execute(session._connect(), "cat; echo done", "secret\n", 10)
    finally:
        session.close()
    assert result.exit_code == 0
    assert result.stdout == "out\n" * 750000 + "\ufffd"  # an undecodable byte is replaced
    assert result.stderr == "err\n" * 750000
    assert fed == (0, "secret\ndone\n", "")


def test_unknown_host_key_is_refused_unless_new_keys_are_accepted_into_a_file(
    tmp_path: Path,
    server: SshServer,
    key: tuple[Path, paramiko.PKey],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = _host(server, key[0], _known(tmp_path))
    refused = HostSession(host, timeout=5).run("true")
    assert refused.error is not None
    assert f"host key of [127.0.0.1]:{server.port} is unknown" in refused.error
    assert "--accept-new-host-keys FILE" in refused.error

    accepted = tmp_path / "accepted" / "known_hosts"
    monkeypatch.setenv(ACCEPT_NEW_ENV, str(accepted))
    assert HostSession(host, timeout=5).run("true").ok
    assert accepted.read_text() == server.known_hosts_line() + "\n"
    assert accepted.stat().st_mode & 0o777 == 0o600
    assert HostSession(host, timeout=5).run("true").ok  # now known, nothing more written
    assert accepted.read_text().count("\n") == 1


def test_changed_host_key_names_the_exact_ssh_keygen_command(
    tmp_path: Path,
    server: SshServer,
    key: tuple[Path, paramiko.PKey],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = paramiko.ECDSAKey.generate()
    known = _known(tmp_path, server.known_hosts_line(old))
    result = HostSession(_host(server, key[0], known), timeout=5).run("true")
    assert result.error is not None
    assert f"host key of 127.0.0.1:{server.port} changed" in result.error
    name = f"[127.0.0.1]:{server.port}"
    assert f"ssh-keygen -f {known} -R '{name}'" in result.error
    # Accepting new keys never accepts a changed one.
    monkeypatch.setenv(ACCEPT_NEW_ENV, str(known))
    again = HostSession(_host(server, key[0], known), timeout=5).run("true")
    assert again.error is not None and "changed" in again.error
    assert server.logins == []  # refused before authenticating


@pytest.mark.parametrize("also_plain", [True, False])
def test_revoked_host_key_is_refused(
    tmp_path: Path, server: SshServer, key: tuple[Path, paramiko.PKey], also_plain: bool
) -> None:
    line = server.known_hosts_line()
    lines = [line] if also_plain else []
    known = _known(tmp_path, *lines, "@revoked * " + line.split(" ", 1)[1])
    result = HostSession(_host(server, key[0], known), timeout=5).run("true")
    assert result.error is not None and "revoked" in result.error
    assert f"{known}:{len(lines) + 1}" in result.error
    assert server.logins == []


def test_a_host_vouched_for_only_by_a_cert_authority_is_refused_clearly(
    tmp_path: Path, server: SshServer, key: tuple[Path, paramiko.PKey]
) -> None:
    ca = paramiko.ECDSAKey.generate()
    known = _known(tmp_path, f"@cert-authority [127.0.0.*]:* {ca.get_name()} {ca.get_base64()}")
    result = HostSession(_host(server, key[0], known), timeout=5).run("true")
    assert result.error is not None
    assert "@cert-authority" in result.error and "cannot check host certificates" in result.error


def test_hashed_and_wildcard_known_hosts_entries_match(
    tmp_path: Path, server: SshServer, key: tuple[Path, paramiko.PKey]
) -> None:
    hashed = paramiko.HostKeys.hash_host(f"[127.0.0.1]:{server.port}")
    _, key_type, blob = server.known_hosts_line().split()
    for names in (hashed, f"[127.0.0.?]:{server.port},!10.0.0.1"):
        known = _known(tmp_path, f"{names} {key_type} {blob}")
        assert HostSession(_host(server, key[0], known), timeout=5).run("true").ok, names


def test_hosts_behind_a_bastion_share_one_connection_to_it(
    tmp_path: Path, key: tuple[Path, paramiko.PKey]
) -> None:
    with (
        ssh_server(key[1], USER, forwarding=True) as bastion_srv,
        ssh_server(key[1], USER) as one,
        ssh_server(key[1], USER) as two,
    ):
        known = _known(tmp_path, *(s.known_hosts_line() for s in (bastion_srv, one, two)))
        bastion = _host(bastion_srv, key[0], known, name="bastion")
        hosts = [
            _host(srv, key[0], known, name=name, via=bastion)
            for name, srv in (("node1", one), ("node2", two))
        ]
        results = on_hosts(hosts, lambda s: s.run("echo $0"), timeout=5)
        assert {name: r.ok for name, r in results.items()} == {"node1": True, "node2": True}
        assert bastion_srv.connections == 1
        assert (one.connections, two.connections) == (1, 1)


@pytest.mark.parametrize(
    ("bastion_args", "why"),
    [
        ("", "connection refused"),
        (
            """-o ProxyCommand="sh -c 'echo no route to %h >&2; exit 1'" """,
            "through the ProxyCommand: no route to 127.0.0.1",
        ),
    ],
)
def test_an_unreachable_bastion_fails_every_host_behind_it_at_once(
    tmp_path: Path, key: tuple[Path, paramiko.PKey], bastion_args: str, why: str
) -> None:
    with ssh_server(key[1], USER) as one, ssh_server(key[1], USER) as two:
        known = _known(tmp_path, one.known_hosts_line(), two.known_hosts_line())
        bastion = Host(
            name="bastion",
            address="127.0.0.1",
            ip="",
            roles=frozenset(),
            kube_node_name="",
            flannel_iface="",
            connection=ConnectionSettings(port=_free_port(), ssh_common_args=bastion_args),
        )
        hosts = [
            _host(srv, key[0], known, name=name, via=bastion)
            for name, srv in (("node1", one), ("node2", two))
        ]
        started = time.monotonic()
        results = on_hosts(hosts, lambda s: s.run("true"), timeout=5)
        assert time.monotonic() - started < 5
    for result in results.values():
        assert result.error is not None
        assert "through 127.0.0.1:" in result.error and why in result.error


def test_a_direct_connection_sends_small_packets_at_once(
    tmp_path: Path, server: SshServer, key: tuple[Path, paramiko.PKey]
) -> None:
    """The TCP socket under a direct connection has Nagle's algorithm off (ssh/tcp.py)."""
    host = _host(server, key[0], _known(tmp_path, server.known_hosts_line()))
    session = HostSession(host)
    try:
        assert session.run("true").ok
        sock = session._connect().client.get_transport().sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        session.close()


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's")
def test_every_read_asks_the_kernel_to_acknowledge_at_once() -> None:
    """Linux leaves quick-ACK mode on its own once replies follow reads (as we set it off
    here); the transport's socket turns it back on after each read."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        peer, _ = listener.accept()
        with client, peer:
            transport = tcp.transport(client)
            try:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
                assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 0
                peer.sendall(b"SSH-2.0-test\r\n")
                assert transport.sock.recv(64) == b"SSH-2.0-test\r\n"
                assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1
            finally:
                transport.close()


def test_proxycommand_relay_and_a_proxycommand_that_exits(
    tmp_path: Path, server: SshServer, key: tuple[Path, paramiko.PKey]
) -> None:
    known = _known(tmp_path, server.known_hosts_line())
    args = _through_relay(known)
    assert HostSession(_host(server, key[0], known, ssh_common_args=args)).run("true").ok

    dead = """-o ProxyCommand="sh -c 'echo no route to %h >&2; exit 1'" """
    started = time.monotonic()
    result = HostSession(
        _host(server, key[0], known, ssh_common_args=f"-o UserKnownHostsFile={known} {dead}"),
        timeout=20,
    ).run("true")
    # The ProxyCommand's end of file ends the attempt, long before the 20 s timeout.
    assert time.monotonic() - started < 5
    assert result.error is not None and "no route to 127.0.0.1" in result.error


def test_a_silent_proxycommand_is_a_timeout_not_an_authentication_failure(
    tmp_path: Path, server: SshServer, key: tuple[Path, paramiko.PKey]
) -> None:
    # The lab relay to a powered-off host: still waiting for its TCP connect when the SSH
    # handshake times out. paramiko then fails with "No existing session" on a live transport.
    known = _known(tmp_path, server.known_hosts_line())
    silent = '-o ProxyCommand="sleep 30"'
    result = HostSession(
        _host(server, key[0], known, ssh_common_args=f"-o UserKnownHostsFile={known} {silent}"),
        timeout=1,
    ).run("true")
    assert result.error == f"timed out connecting to 127.0.0.1:{server.port}"


def test_many_hosts_at_once_share_no_connection_settings(
    tmp_path: Path, server: SshServer, key: tuple[Path, paramiko.PKey]
) -> None:
    # fabric's Config merges lazily and is not safe to share between threads: connections
    # made in parallel from one Config failed at random ("No attribute or config key found").
    known = _known(tmp_path, server.known_hosts_line())
    args = _through_relay(known)
    hosts = [_host(server, key[0], known, name=f"n{i}", ssh_common_args=args) for i in range(12)]
    for _ in range(5):  # a race: each round has a chance to show it
        results = on_hosts(hosts, lambda s: s.run("true"), timeout=10)
        assert {name: r.error for name, r in results.items() if not r.ok} == {}


def test_ssh_config_is_read_and_the_inventory_wins(
    tmp_path: Path, server: SshServer, key: tuple[Path, paramiko.PKey]
) -> None:
    known = _known(tmp_path, server.known_hosts_line())
    ssh_dir = tmp_path / "home" / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "config").write_text(
        f"Host db\n  HostName 127.0.0.1\n  Port {server.port}\n  User nobody-here\n"
        f"  IdentityFile {key[0]}\n  UserKnownHostsFile {known}\n"
    )
    alias = Host(
        name="db",
        address="db",
        ip="127.0.0.1",
        roles=frozenset(),
        kube_node_name="db",
        flannel_iface="",
        connection=ConnectionSettings(user=USER),
    )
    assert HostSession(alias, timeout=5).run("true").ok
    assert server.logins == [USER]
    wrong = HostSession(alias.__class__(**{**alias.__dict__, "connection": ConnectionSettings()}))
    failed = wrong.run("true")
    assert failed.error is not None and "authentication failed for nobody-here@" in failed.error


def test_failures_are_plain_sentences(
    tmp_path: Path, server: SshServer, key: tuple[Path, paramiko.PKey]
) -> None:
    known = _known(tmp_path, server.known_hosts_line())
    slow = HostSession(_host(server, key[0], known)).run("sleep 5", timeout=1)
    assert slow.error == f"the command timed out on 127.0.0.1:{server.port} after 1 s"
    port = _free_port()
    refused = HostSession(_host(server, key[0], known, port=port), timeout=2).run("true")
    assert refused.error == f"connection refused by 127.0.0.1:{port} (is sshd running?)"
    nowhere = Host(**{**_host(server, key[0], known).__dict__, "address": "no-such-host.invalid"})
    assert HostSession(nowhere, timeout=2).run("true").error == (
        "could not resolve host name no-such-host.invalid"
    )
    other_key = tmp_path / "other"
    write_key(other_key)
    denied = HostSession(_host(server, key[0], known, private_key_file=str(other_key)), timeout=5)
    error = denied.run("true").error
    assert error is not None and error.startswith(f"SSH authentication failed for {USER}@")


def test_ipv6_host(tmp_path: Path, key: tuple[Path, paramiko.PKey]) -> None:
    try:
        srv_cm = ssh_server(key[1], USER, address="::1")
        srv = srv_cm.__enter__()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        known = _known(tmp_path, srv.known_hosts_line())
        assert srv.known_hosts_line().startswith(f"[::1]:{srv.port} ")
        assert HostSession(_host(srv, key[0], known)).run("true").ok
    finally:
        srv_cm.__exit__(None, None, None)


def test_become_wraps_in_noninteractive_sudo() -> None:
    def host(user: str, become: bool) -> Host:
        conn = ConnectionSettings(user=user, become=become)
        return Host("h", "10.0.0.1", "10.0.0.1", frozenset(), "h", "", conn)

    assert HostSession(host("centos", True))._wrap("id -u", None) == "sudo -n sh -c 'id -u'"
    assert HostSession(host("root", True))._wrap("id -u", None) == "id -u"
    assert HostSession(host("centos", False))._wrap("id -u", None) == "id -u"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ansible_raw(inventory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    ansible = Path(sys.executable).parent / "ansible"
    command = [str(ansible), "all", "-i", str(inventory), "-m", "raw", "-a", "true"]
    return subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=120
    )


def test_ansible_checks_host_keys_whatever_the_environment_and_inventory_say(
    tmp_path: Path,
    server: SshServer,
    key: tuple[Path, paramiko.PKey],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Real ansible and OpenSSH against the in-process server, whose key is nowhere known."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"node1 ansible_host=127.0.0.1 ansible_port={server.port} ansible_user={USER}"
        f" ansible_ssh_private_key_file={key[0]} ansible_host_key_checking=false"
        " ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
    )
    env = {
        **os.environ,
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=no",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
    }
    pinned = {**env, **ansible_host_key_env(env)}
    refused = _ansible_raw(inventory, pinned)
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "Host key verification failed" in refused.stdout + refused.stderr
    assert server.logins == []
    # The same run without the pin connects: the pin is what made the difference.
    assert _ansible_raw(inventory, env).returncode == 0

    accepted = tmp_path / "accepted_hosts"
    monkeypatch.setenv(ACCEPT_NEW_ENV, str(accepted))
    ok = _ansible_raw(inventory, {**env, **ansible_host_key_env(env)})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # OpenSSH wrote the key where the CLI's own SSH reads it from now on.
    assert HostSession(_host(server, key[0], accepted), timeout=5).run("true").ok
