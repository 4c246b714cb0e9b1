"""Text from hosts and tasks is printed as it is, never read as rich markup."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from k8s_provision import runner
from k8s_provision.progress import PlaybookProgress, operator_console

BRACKETED = "Failed to start [/usr/bin/etcd] [bold]x[/] [red]"

PLAYBOOK = f"""
- name: Play [with] brackets
  hosts: all
  gather_facts: false
  tasks:
    - name: Task [/usr/bin/etcd]
      ansible.builtin.command: sh -c 'echo "{BRACKETED}" >&2; exit 1'
      changed_when: false
"""


@pytest.mark.parametrize("terminal", [True, False])
def test_bracketed_task_output_is_printed_verbatim(tmp_path: Path, terminal: bool) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"h1 ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    out = io.StringIO()
    console = operator_console()
    console.file = out
    console._force_terminal = terminal  # the Live table on a terminal, plain lines elsewhere
    with PlaybookProgress(console, ["h1", "[h2]"], "play.yml") as progress:
        result = runner.run_playbook(playbook, inventory, log_dir=tmp_path, on_event=progress)
    printed = out.getvalue()
    assert f"failed: h1: Task [/usr/bin/etcd]: non-zero return code: {BRACKETED}" in printed
    if terminal:
        assert "[h2]" in printed  # a host name in the table
    error = runner.failure_error(result)
    assert error is not None and BRACKETED in "\n".join(error.details)


def test_operator_console_never_reads_markup() -> None:
    plain = operator_console()
    plain.file = io.StringIO()
    plain.print(BRACKETED)
    assert plain.file.getvalue().strip() == BRACKETED
