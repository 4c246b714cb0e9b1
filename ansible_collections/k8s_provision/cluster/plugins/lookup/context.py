"""Lookup `k8s_context`: the `k8s` variable the templates read, built by k8s-provision from the
play's `groups` and `hostvars` exactly as `k8s-provision render` builds it.

    k8s: "{{ lookup('k8s_context') }}"             # for the current host
    k8s: "{{ lookup('k8s_context', 'node1') }}"    # for another host
"""

from __future__ import annotations

import hashlib
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = """
name: k8s_context
short_description: the k8s-provision template context of a host
description:
  - Validates the inventory with k8s-provision's rules and returns the host's template context.
options:
  _terms:
    description: inventory host name; defaults to the current host
    required: false
"""


class LookupModule(LookupBase):  # type: ignore[misc]
    def run(
        self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Any]:
        try:
            from k8s_provision.errors import InventoryError
            from k8s_provision.inventory import build_cluster
            from k8s_provision.paths import templates_dir
            from k8s_provision.render import host_context, render_host
        except ImportError as err:
            raise AnsibleError(
                f"k8s_context: cannot import k8s_provision ({err}); run ansible-playbook from the"
                " Python environment where k8s-provision is installed"
            ) from None
        variables = variables or {}
        host = str(terms[0]) if terms else str(variables["inventory_hostname"])
        source = str(variables.get("inventory_file") or "inventory")
        try:
            cluster = build_cluster(
                variables["groups"], variables["hostvars"], source, check_typos=False
            )
        except InventoryError as err:
            raise AnsibleError("\n".join([err.message, *err.details])) from None
        if host not in {h.name for h in cluster.hosts}:
            # A host in no role group (only a bastion passes validation so) gets no context.
            return [{}]
        context = host_context(cluster, host)
        # The roles render from the very directory `k8s-provision render` reads.
        context["templates_dir"] = str(templates_dir())
        # SHA-1 of each file's content as `render` writes it: a role compares it with the
        # host's copy and templates only the files that differ, which keeps reruns fast.
        rendered = render_host(cluster, host)
        for planned in context["files"]:
            planned["checksum"] = hashlib.sha1(
                rendered[planned["dest"]].encode(), usedforsecurity=False
            ).hexdigest()
        return [context]
