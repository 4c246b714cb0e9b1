"""The CLI owns its children: killed by SIGTERM, SIGHUP or SIGKILL in the middle of a real
ansible-playbook run, it leaves no process of that run behind and no become password on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PASSWORD = "pw-[/usr/bin/etcd]-7f3a9"

# A stand-in for the CLI process: installs the CLI's signal handlers, runs a real playbook
# with a become password, and prints each event so the test knows when the long task started.
DRIVER = """
import json, sys
from pathlib import Path
from k8s_provision import cli, runner
from k8s_provision.errors import ProvisionError
cli.install_signal_handlers()
try:
    runner.run_playbook(
        Path(sys.argv[1]), Path(sys.argv[2]), log_dir=Path(sys.argv[3]),
        become_password=sys.argv[4],
        on_event=lambda e: print(json.dumps(e), flush=True),
    )
except ProvisionError as err:
    print("exit", err.exit_code, flush=True)
    sys.exit(err.exit_code)
"""

PLAYBOOK = """
- name: Long play
  hosts: all
  gather_facts: false
  tasks:
    - name: Sleep for a long time
      ansible.builtin.command: sleep 300
      changed_when: false
"""


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _files_holding(secret: bytes, roots: list[Path], since: float) -> list[Path]:
    holding = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = Path(dirpath) / name
                try:
                    info = path.stat()
                    if info.st_mtime < since or info.st_size > 1 << 20:
                        continue
                    if secret in path.read_bytes():
                        holding.append(path)
                except OSError:
                    continue
    return holding


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_killed_cli_leaves_no_process_and_no_password(tmp_path: Path, signum: int) -> None:
    started = time.time()
    playbook = tmp_path / "long.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"a ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            DRIVER,
            str(playbook),
            str(inventory),
            str(tmp_path / "logs"),
            PASSWORD,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout is not None
    for line in driver.stdout:
        event = json.loads(line)
        if event["event"] == "task" and event["name"] == "Sleep for a long time":
            break
    deadline = time.monotonic() + 30
    while not any(
        "sleep" in Path(f"/proc/{p}/comm").read_text(errors="replace")
        for p in _descendants(driver.pid)
        if _alive(p)
    ):
        assert time.monotonic() < deadline, "the task's sleep never started"
        time.sleep(0.2)
    children = _descendants(driver.pid)
    assert children

    driver.send_signal(signum)
    rest = driver.stdout.read()
    driver.wait(timeout=30)

    if signum != signal.SIGKILL:
        assert f"exit {128 + signum}" in rest
        assert driver.returncode == 128 + signum
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in children):
        assert time.monotonic() < deadline, f"left running: {[p for p in children if _alive(p)]}"
        time.sleep(0.2)
    assert _files_holding(PASSWORD.encode(), [tmp_path, Path("/tmp")], started) == []
