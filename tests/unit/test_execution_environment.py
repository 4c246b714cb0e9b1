"""execution-environment.yml is a valid ansible-builder 3 definition that installs this package,
the ansible-core range it supports, a Python it runs on and ssh."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from ansible_builder.ee_schema import validate_schema
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]


def definition() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    return data


def project() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return data


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def test_definition_matches_the_ansible_builder_3_schema() -> None:
    ee = definition()
    validate_schema(ee)
    assert ee["version"] == 3


def test_python_requirements_install_this_package_at_its_version() -> None:
    deps = definition()["dependencies"]
    requirements = [Requirement(line) for line in requirement_lines(REPO / deps["python"])]
    ours = [r for r in requirements if r.name == project()["name"]]
    assert len(ours) == 1
    galaxy = yaml.safe_load((REPO / deps["python"]).with_name("galaxy.yml").read_text())
    assert ours[0].specifier.contains(galaxy["version"])


def test_ansible_core_and_python_match_the_package() -> None:
    deps = definition()["dependencies"]
    ansible_core = Requirement(deps["ansible_core"]["package_pip"])
    declared = [Requirement(d) for d in project()["dependencies"]]
    assert ansible_core in [d for d in declared if d.name == ansible_core.name]
    version = re.fullmatch(r"/usr/bin/python(\d+\.\d+)", deps["python_interpreter"]["python_path"])
    assert version is not None
    assert SpecifierSet(project()["requires-python"]).contains(version[1])
    assert deps["python_interpreter"]["package_system"] == f"python{version[1]}"


def test_system_requirements_bring_ssh_on_every_platform() -> None:
    lines = requirement_lines(REPO / definition()["dependencies"]["system"])
    names = {line.split()[0]: line for line in lines}
    assert "[platform:rpm]" in names["openssh-clients"]
    assert "[platform:dpkg]" in names["openssh-client"]
