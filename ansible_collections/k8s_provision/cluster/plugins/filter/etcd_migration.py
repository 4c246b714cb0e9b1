"""Filter `k8s_provision.cluster.etcd_migration` (documented in etcd_migration.yml): the steps
of the rolling classic-to-tls migration of etcd (see k8s_provision.etcd_migration)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8s_provision.cluster.plugins.plugin_utils.tool import tool_module


def etcd_migration(
    results: Sequence[Mapping[str, Any]],
    hosts: Sequence[str],
    etcd_members: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    migration = tool_module("etcd_migration", AnsibleFilterError)
    return dict(migration.plan(results, hosts, etcd_members))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"etcd_migration": etcd_migration}
