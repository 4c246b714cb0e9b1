from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from k8s_provision import __version__
from k8s_provision.cli import cli
from tests.unit.test_inventory import CASES, write_case


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), prog_name="k8s-provision")


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_lists_the_verbs() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for verb in ("render", "lab"):
        assert verb in result.output


def test_render_writes_files(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("render", str(repo / "inventories" / "reference.ini"), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "17 files for 3 hosts" in result.output
    assert (out / "node2" / "etc" / "kubernetes" / "kubelet").is_file()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_render_rejects_malformed_inventory(case: dict[str, Any], tmp_path: Path) -> None:
    path = write_case(case, tmp_path)
    out = tmp_path / "out"
    strict = ["--strict"] if case.get("strict") else []
    result = run("render", str(path), "-o", str(out), *strict)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    for expected in case["expect"]:
        assert expected in result.stderr
    assert not out.exists()


def test_unknown_option_is_a_usage_error() -> None:
    assert run("render", "--bogus").exit_code == 2


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ini"
    bad.write_text("[masters]\nm ansible_host=10.0.0.1\n")
    script = shutil.which("k8s-provision", path=str(Path(sys.executable).parent))
    assert script, "the console script is not installed in this environment"
    result = subprocess.run(
        [script, "render", str(bad), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {bad}: invalid inventory")
    assert "no nodes group" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ini"
    bad.write_text("")
    result = run("--debug", "render", str(bad))
    assert result.exit_code != 0
    assert result.exception is not None
