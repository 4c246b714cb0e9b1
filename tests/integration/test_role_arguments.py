"""The collection's roles check their variables against meta/argument_specs.yml before their
first task: a wrong type or a missing context stops the play with Ansible's own message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PLAYBOOK = """
- name: Run one role on localhost
  hosts: localhost
  gather_facts: false
  roles:
    - role: k8s_provision.cluster.{role}
"""


@pytest.mark.parametrize(
    ("role", "extra_vars", "message"),
    [
        (
            "flannel",
            '{"k8s": {}, "flannel_etcd_timeout": "soon"}',
            "argument 'flannel_etcd_timeout' is of type str and we were unable to convert to int",
        ),
        (
            "prerequisites",
            '{"k8s": {}, "prerequisites_kernel_modules": {"br_netfilter": 1}}',
            "argument 'prerequisites_kernel_modules' is of type dict",
        ),
        ("etcd", "{}", "missing required arguments: k8s"),
    ],
)
def test_wrong_role_variables_fail_before_the_first_task(
    tmp_path: Path, role: str, extra_vars: str, message: str
) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK.format(role=role))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            extra_vars,
            str(playbook),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stdout + result.stderr
    assert "ok=0" in result.stdout
