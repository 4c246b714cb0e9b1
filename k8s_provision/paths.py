"""Where the shipped playbooks, templates and sample inventories live.

In a wheel they sit in `k8s_provision/share/`; in a checkout (editable install, tests) they are
at the repository root. One lookup serves both."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def share_dir() -> Path:
    installed = _PACKAGE / "share"
    return installed if (installed / "templates").is_dir() else _PACKAGE.parent


def templates_dir() -> Path:
    return share_dir() / "templates"


def playbooks_dir() -> Path:
    return share_dir() / "playbooks"


def inventories_dir() -> Path:
    return share_dir() / "inventories"


def ansible_cfg() -> Path:
    return share_dir() / "ansible.cfg"
