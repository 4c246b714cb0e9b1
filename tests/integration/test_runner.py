"""The runner against real ansible-playbook runs on localhost (connection=local)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from k8s_provision import runner
from k8s_provision.errors import OperationFailed

PLAYBOOK = """
- name: Local play
  hosts: all
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.command: echo hello
      changed_when: true
    - name: Break on b
      ansible.builtin.command: sh -c 'echo the disk is full >&2; exit 3'
      changed_when: false
      when: inventory_hostname == 'b'
    - name: Hidden secret
      ansible.builtin.debug:
        msg: "s3cr3t-value"
      no_log: true
"""


@pytest.fixture
def local_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.ini"
    path.write_text(
        f"a ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        f"b ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    return path


def test_failed_task_is_named_with_host_task_and_stderr(
    tmp_path: Path, local_inventory: Path
) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    events: list[dict[str, object]] = []
    result = runner.run_playbook(
        playbook, local_inventory, log_dir=tmp_path / "logs", on_event=events.append
    )
    assert result.exit_code == 2
    assert result.stats["a"]["changed"] == 1 and result.stats["b"]["failures"] == 1
    error = runner.failure_error(result)
    assert isinstance(error, OperationFailed)
    assert error.message == "play.yml failed on 1 host: b"
    assert "b: task 'Break on b': non-zero return code: the disk is full" in error.details
    assert f"full log: {result.log_path}" in error.details
    assert {e["event"] for e in events} >= {"play", "task", "ok", "failed", "stats"}
    log = result.log_path.read_text()
    assert "PLAY RECAP" in log
    assert "s3cr3t-value" not in log
    assert "s3cr3t-value" not in "".join(map(str, events))
    assert not list((tmp_path / "logs").glob("*.events"))


def test_success_and_options(tmp_path: Path, local_inventory: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    result = runner.run_playbook(playbook, local_inventory, log_dir=tmp_path, limit="a", forks=2)
    assert result.ok and runner.failure_error(result) is None
    assert list(result.stats) == ["a"]
    assert result.command[-1] == str(playbook)
    assert result.command[3:5] == ["--limit", "a"]


def test_parse_error_maps_to_a_clear_failure(tmp_path: Path, local_inventory: Path) -> None:
    playbook = tmp_path / "broken.yml"
    playbook.write_text("- hosts: all\n  tasks:\n    - ansible.builtin.nonexistent_module: {}\n")
    result = runner.run_playbook(playbook, local_inventory, log_dir=tmp_path)
    assert result.exit_code == 4
    error = runner.failure_error(result)
    assert error is not None and "exit 4" in error.message


def test_become_password_is_never_in_argv_or_log(tmp_path: Path, local_inventory: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    result = runner.run_playbook(
        playbook, local_inventory, log_dir=tmp_path, limit="a", become_password="pa55-w0rd"
    )
    assert "pa55-w0rd" not in " ".join(result.command)
    assert "pa55-w0rd" not in result.log_path.read_text()
    assert not list(Path("/tmp").glob("k8sp-become-*"))
