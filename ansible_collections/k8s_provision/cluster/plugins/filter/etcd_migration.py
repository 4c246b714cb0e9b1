"""Filter `k8s_provision.cluster.etcd_migration` (documented in etcd_migration.yml): the steps
of the rolling classic-to-tls migration of etcd (see k8s_provision.etcd_migration)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError


def etcd_migration(
    results: Sequence[Mapping[str, Any]],
    hosts: Sequence[str],
    etcd_members: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    # Imported when the filter runs: ansible-doc and the sanity tests load this plugin where
    # k8s-provision is not installed.
    try:
        from k8s_provision import etcd_migration as migration
    except ImportError as err:
        raise AnsibleFilterError(
            f"k8s_provision.cluster: cannot import k8s_provision ({err}); run the playbooks"
            " with the Python where k8s-provision is installed"
        ) from None
    return migration.plan(results, hosts, etcd_members)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"etcd_migration": etcd_migration}
