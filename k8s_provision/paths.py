"""Where the shipped collection, templates and sample inventories live.

The `k8s_provision.cluster` collection (playbooks, roles, plugins, templates) sits beside this
package: in site-packages/ansible_collections/ after `pip install .`, at the checkout's root in an
editable install or a test run. The sample inventories and the CLI's ansible.cfg are in
`k8s_provision/share/` in a wheel and at the checkout's root otherwise."""

from __future__ import annotations

from pathlib import Path

COLLECTION = "k8s_provision.cluster"

_PACKAGE = Path(__file__).resolve().parent


def share_dir() -> Path:
    installed = _PACKAGE / "share"
    return installed if (installed / "inventories").is_dir() else _PACKAGE.parent


def collection_dir() -> Path:
    return _PACKAGE.parent.joinpath("ansible_collections", *COLLECTION.split("."))


def templates_dir() -> Path:
    return collection_dir() / "templates"


def playbooks_dir() -> Path:
    return collection_dir() / "playbooks"


def inventories_dir() -> Path:
    return share_dir() / "inventories"


def ansible_cfg() -> Path:
    return share_dir() / "ansible.cfg"
