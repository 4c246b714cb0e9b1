from __future__ import annotations

import getpass
import os
from dataclasses import replace
from pathlib import Path

import pytest

from k8s_provision import preflight
from k8s_provision.model import ConnectionSettings, Host
from k8s_provision.ssh import on_hosts
from tests.unit.sshd import ssh_server, write_key


@pytest.mark.parametrize(
    ("ansible", "python", "too_old"),
    [
        ("2.16.14", (2, 7), False),
        ("2.16.14", (3, 6), False),
        ("2.16.14", (3, 5), True),
        ("2.17.0", (2, 7), True),
        ("2.17.0", (3, 6), True),
        ("2.17.0", (3, 7), False),
        ("2.19.14", (3, 6), True),
        ("2.19.14", (3, 11), False),
    ],
)
def test_python_support_matrix(ansible: str, python: tuple[int, int], too_old: bool) -> None:
    assert preflight.python_too_old(python, ansible) is too_old


def _host() -> Host:
    return Host(
        name="node1",
        address="10.0.0.2",
        ip="10.0.0.2",
        roles=frozenset(),
        kube_node_name="node1",
        flannel_iface="",
        connection=ConnectionSettings(user="centos"),
    )


def test_centos7_python_too_old_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "ansible_version", "2.19.14")
    facts = preflight.parse_probe(
        "uid=0\nhostname=node1\nmachine_id=abc\nos=centos\nos_like=rhel fedora\nos_version=7\n"
        "python=/usr/bin/python 2.7\nclock=100.0\n"
    )
    problems = preflight._host_problems(_host(), facts, "redhat", 100.0)
    assert [p.check for p in problems] == ["python"]
    assert "pip install 'k8s-provision[el7]'" in problems[0].detail
    assert "Python 2.7" in problems[0].detail


def test_wrong_family_not_root_and_skew() -> None:
    facts = preflight.parse_probe(
        "uid=1000\nos=debian\nos_like=\nos_version=12\npython=/usr/bin/python3 3.11\nclock=160.0\n"
    )
    problems = {p.check: p for p in preflight._host_problems(_host(), facts, "redhat", 100.0)}
    assert set(problems) == {"become", "os", "clock"}
    assert "k8s_os_family=debian" in problems["os"].detail
    assert "+60.0 s" in problems["clock"].detail
    assert "ansible_become=true" in problems["become"].detail


def test_probe_over_real_ssh_reads_this_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe script through the CLI's SSH to the in-process server, which runs it here."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    key_path = tmp_path / "id_ecdsa"
    user = getpass.getuser()
    with ssh_server(write_key(key_path), user) as server:
        known = tmp_path / "known_hosts"
        known.write_text(server.known_hosts_line() + "\n")
        host = replace(
            _host(),
            address=server.address,
            connection=ConnectionSettings(
                user=user,
                port=server.port,
                private_key_file=str(key_path),
                ssh_common_args=f"-o UserKnownHostsFile={known}",
            ),
        )
        results = on_hosts([host], preflight._probe, timeout=5)
    facts, error, local = results["node1"]
    assert error is None and facts is not None
    assert facts["uid"] == str(os.getuid())
    assert facts["user"] == user
    assert facts["python"].split()[-1][0] in "23"  # some interpreter of this machine answered
    assert abs(float(facts["clock"]) - local) < 5
