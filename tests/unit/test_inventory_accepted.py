"""Inventories Ansible accepts (tests/unit/data/accepted_inventories.yml, one case per
behaviour): legacy connection variables, every role-group alias, INI text in .yaml,
directories, relative paths, dedicated etcd beside kubespray's group_vars, IPv6 and DNS SSH
addresses, etcd_member_name, vault, and real-world layouts (kubespray, contrib, kubeasz,
k3s-ansible) whose own variables raise no warning."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s_provision import inventory, render
from tests.unit.test_inventory_hostile import encrypt

DATA = Path(__file__).parent / "data"
CASES: list[dict[str, Any]] = yaml.safe_load((DATA / "accepted_inventories.yml").read_text())


def write_case(case: dict[str, Any], where: Path) -> Path:
    for name, dest in case.get("copy", {}).items():
        shutil.copytree(DATA / name, where / dest, dirs_exist_ok=True)
    vault = case.get("vault", {})
    for rel, text in case["files"].items():
        target = where / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        encrypted = rel in vault.get("encrypt", [])
        target.write_text(encrypt(text, vault["password"]) if encrypted else text)
    return where / str(case.get("inventory", next(iter(case["files"]))))


def field(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def render_with_the_cli(path: Path, out: Path, env: dict[str, str]) -> None:
    script = shutil.which("k8s-provision", path=str(Path(sys.executable).parent))
    assert script
    result = subprocess.run(
        [script, "render", str(path), "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_accepted_inventory_has_the_meaning_ansible_gives_it(
    case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_case(case, tmp_path)
    vault = case.get("vault", {})
    if "env" in vault:
        # ansible-core reads ANSIBLE_VAULT_PASSWORD_FILE when it is imported: a fresh process.
        (tmp_path / "vault-pass").write_text(vault["env"])
        env = {"ANSIBLE_VAULT_PASSWORD_FILE": str(tmp_path / "vault-pass")}
        render_with_the_cli(path, tmp_path / "out", env)
        network = tmp_path / "out" / "m" / "etc" / "k8s-provision" / "flannel-network.json"
        assert case["settings"]["flannel_network"] in network.read_text()
        return
    files: tuple[str, ...] = ()
    if "given" in vault:
        (tmp_path / "vault-pass").write_text(vault["given"])
        files = (str(tmp_path / "vault-pass"),)
    if case.get("relative"):
        monkeypatch.chdir(tmp_path)
        path = path.relative_to(tmp_path)
    warnings: list[str] = []
    cluster = inventory.load(
        path, vault=inventory.VaultOptions(password_files=files), warn=warnings.append
    )
    for role in ("masters", "nodes", "etcd"):
        if role in case:
            assert list(getattr(cluster, role)) == [str(h) for h in case[role]]
    for host, expected in case.get("hosts", {}).items():
        for name, value in expected.items():
            assert field(cluster.host(host), name) == value, (host, name)
    for name, value in case.get("settings", {}).items():
        assert getattr(cluster.settings, name) == value, name
    if "warnings" in case:
        text = "\n".join(warnings)
        if case["warnings"]:
            assert all(expected in text for expected in case["warnings"]), text
        else:
            assert not warnings, text
    rendered = render.render_cluster(cluster) if "rendered" in case else {}
    for host, files_ in case.get("rendered", {}).items():
        for dest, lines in files_.items():
            for line in lines:
                assert f"{line}\n" in rendered[host][dest]
