"""Render through Ansible's own template action (with the k8s_provision.cluster.context lookup
the roles use) and through `render`, and require byte-identical files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from k8s_provision import inventory, render
from k8s_provision.paths import templates_dir

PLAYBOOK = """
- name: Render every planned file through Ansible's template action
  hosts: all
  gather_facts: false
  tasks:
    - name: Build the context
      ansible.builtin.set_fact:
        k8s: "{{ lookup('k8s_provision.cluster.context') }}"
    - name: Make the directories
      ansible.builtin.file:
        path: "{{ out }}/{{ inventory_hostname }}{{ item.dest | dirname }}"
        state: directory
        mode: "0755"
      loop: "{{ k8s.files }}"
      delegate_to: localhost
    - name: Render
      ansible.builtin.template:
        src: "{{ templates }}/{{ item.template }}"
        dest: "{{ out }}/{{ inventory_hostname }}{{ item.dest }}"
        mode: "0644"
      loop: "{{ k8s.files }}"
      delegate_to: localhost
"""


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def custom_inventory(where: Path) -> Path:
    path = where / "custom.yml"
    path.write_text(
        "all:\n  vars: {flannel_network: 10.200.0.0/16, flannel_backend: vxlan,"
        " kube_cluster_dns: 10.254.0.10, kubelet_extra_args: --max-pods=50,"
        " k8s_os_family: debian}\n"
        "  children:\n"
        "    kube_control_plane: {hosts: {cp: {ansible_host: 10.5.0.1}}}\n"
        "    kube_node: {hosts: {w1: {ansible_host: 10.5.0.2, flannel_iface: eth1},"
        " w2: {ansible_host: 10.5.0.3, kube_node_name: worker-2}}}\n"
        "    etcd: {hosts: {e1: {ansible_host: 10.5.0.11}}}\n"
    )
    return path


@pytest.mark.parametrize("sample", ["reference.ini", "kubespray.yml", "custom", "reference-tls"])
def test_ansible_template_output_matches_render(repo: Path, tmp_path: Path, sample: str) -> None:
    if sample == "custom":
        source = custom_inventory(tmp_path)
    elif sample == "reference-tls":
        source = repo / "tests" / "unit" / "data" / "reference-tls.ini"
    else:
        source = repo / "inventories" / sample
    ours, theirs = tmp_path / "render", tmp_path / "ansible"
    render.write_rendered(render.render_cluster(inventory.load(source)), ours)
    playbook = tmp_path / "render.yml"
    playbook.write_text(PLAYBOOK)
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(source),
            str(playbook),
            "-e",
            f"out={theirs}",
            "-e",
            f"templates={templates_dir()}",
            "-e",
            "ansible_connection=local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ],
        capture_output=True,
        text=True,
        check=False,
        # The context lookup makes a TLS cluster's PKI in the state directory: a test's own.
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert tree(theirs) == tree(ours)
    assert len(tree(ours)) >= 10
