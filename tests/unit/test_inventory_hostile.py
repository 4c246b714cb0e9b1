"""Hostile inventories (tests/unit/data/hostile_inventories.yml, one case per attack): each
must exit 2 naming the culprit, print no traceback and no secret, and write nothing at all,
inside -o or outside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from k8s_provision.cli import cli

DATA = Path(__file__).parent / "data"
CASES: list[dict[str, Any]] = yaml.safe_load((DATA / "hostile_inventories.yml").read_text())


def encrypt(text: str, password: str) -> str:
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(password.encode()))])
    return str(vault.encrypt(text).decode())


def write_case(case: dict[str, Any], where: Path) -> tuple[Path, list[str]]:
    """The inventory path and the extra command-line options the case needs."""
    vault = case.get("vault", {})
    for rel, text in case["files"].items():
        target = where / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        encrypted = rel in vault.get("encrypt", [])
        target.write_text(encrypt(text, vault["password"]) if encrypted else text)
    options: list[str] = []
    if "given" in vault:
        (where / "vault-pass").write_text(vault["given"] + "\n")
        options += ["--vault-password-file", str(where / "vault-pass")]
    return where / case.get("inventory", next(iter(case["files"]))), options


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_there_are_at_least_thirty_hostile_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_hostile_inventory_is_refused_and_writes_nothing(
    case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    path, options = write_case(case, work)
    out = work / "deep" / "out"
    before = snapshot(tmp_path)
    result = CliRunner().invoke(cli, ["render", str(path), "-o", str(out), *options])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for expected in case["expect"]:
        assert expected in result.stderr, f"{expected!r} not in:\n{result.stderr}"
    for secret in case.get("never", []):
        assert secret not in result.output
    assert snapshot(tmp_path) == before


def test_ask_vault_pass_without_a_terminal_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text("[masters]\nm ansible_host=10.0.0.1\n[nodes]\nn ansible_host=10.0.0.2\n")
    result = CliRunner().invoke(
        cli, ["render", str(path), "-o", str(tmp_path / "o"), "--ask-vault-pass"]
    )
    assert result.exit_code == 2
    assert "--ask-vault-pass needs a terminal" in result.stderr
    assert not (tmp_path / "o").exists()
