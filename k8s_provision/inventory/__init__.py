"""Read an Ansible inventory with ansible-core's own code and validate it into a `Cluster`.

`load` is the CLI's entry point. `build_cluster` holds every rule and works on plain mappings,
so the collection's lookup (k8s_provision.cluster.context) builds the very same model from
`groups` and `hostvars` during a playbook run.

Modules: `source` (checks on the files before anything parses them), `reader` (ansible-core's
inventory, variable and vault code), `build` (the rules, from `roles`, `hosts`, `settings`,
`connection`), `typos` (did-you-mean for our variables only), `values` (allowed shapes)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from k8s_provision.errors import InventoryError
from k8s_provision.inventory.build import build_cluster, typo_findings
from k8s_provision.inventory.reader import VaultOptions, first_line, read
from k8s_provision.inventory.roles import BASTION_GROUP, ROLE_GROUPS
from k8s_provision.inventory.source import check_source
from k8s_provision.inventory.typos import close_match, edit_distance, known_variables
from k8s_provision.model import Cluster

__all__ = [
    "BASTION_GROUP",
    "ROLE_GROUPS",
    "VaultOptions",
    "build_cluster",
    "close_match",
    "edit_distance",
    "known_variables",
    "load",
]


def _warn_on_stderr(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def load(
    path: str | Path,
    *,
    vault: VaultOptions | None = None,
    strict: bool = False,
    warn: Callable[[str], None] = _warn_on_stderr,
) -> Cluster:
    """Read and validate the inventory at `path` (an INI or YAML file, or a directory). A likely
    typo of one of our variables goes to `warn`, or is an error with `strict`."""
    # ansible-core expands ~ in an inventory path itself (a quoted "~/inv" reaches it as is).
    source = Path(path).expanduser()
    files = check_source(source)
    groups, hostvars = read(source, vault or VaultOptions(), files)
    try:
        cluster = build_cluster(groups, hostvars, str(path), check_typos=strict)
    except InventoryError:
        raise
    except Exception as err:  # a Jinja expression ansible-core could not evaluate either
        raise InventoryError(f"{path}: cannot resolve a variable: {first_line(err)}") from None
    if not strict:
        for line in typo_findings([h.name for h in cluster.hosts], hostvars, str(path)):
            warn(line)
    return cluster
