"""Lookup `k8s_provision.cluster.context`: the `k8s` variable the templates read, built by
k8s-provision from the play's `groups` and `hostvars` exactly as `k8s-provision render` builds it.
Besides the template context it holds `facts`: the cluster facts of `k8s_provision.facts`
(units, open ports, interfaces, etcd and API URLs, Python interpreters) for the roles to read.
The documentation below is what `ansible-doc -t lookup k8s_provision.cluster.context` shows."""

from __future__ import annotations

DOCUMENTATION = """
name: context
author: k8s-provision maintainers !UNKNOWN
short_description: the k8s-provision template context of a host
description:
  - Validates the whole inventory (the play's C(groups) and C(hostvars)) with the rules of
    C(k8s-provision render) and returns one host's template context, the C(k8s) variable every
    role and template of this collection reads.
  - Fails with every inventory problem at once (missing role groups, duplicate addresses,
    overlapping networks, ...), before any host is contacted.
  - Needs the k8s-provision Python package in the Python that runs ansible-playbook.
requirements:
  - k8s-provision (the Python package this collection ships with)
options:
  _terms:
    description: Inventory host name; the current host when omitted.
    type: list
    elements: str
    required: false
"""

EXAMPLES = """
- name: Load the current host's cluster context
  ansible.builtin.set_fact:
    k8s: "{{ lookup('k8s_provision.cluster.context') }}"

- name: Show the etcd members node1 would join
  ansible.builtin.debug:
    msg: "{{ lookup('k8s_provision.cluster.context', 'node1').etcd_initial_cluster }}"
"""

RETURN = """
_raw:
  description:
    - One element, the host's context; empty for a host in no role group (a bastion).
    - Holds the cluster settings, derived values such as C(etcd_initial_cluster), C(host) (this
      host's roles and addresses), C(files) (every file the host receives, with its template,
      destination and SHA-1 C(checksum)) and C(templates_dir).
  type: list
  elements: dict
"""

import hashlib
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):  # type: ignore[misc]
    def run(
        self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Any]:
        try:
            from k8s_provision import facts, pki
            from k8s_provision.errors import InventoryError
            from k8s_provision.inventory import build_cluster
            from k8s_provision.paths import templates_dir
            from k8s_provision.render import host_context, render_host
        except ImportError as err:
            raise AnsibleError(
                f"k8s_provision.cluster.context: cannot import k8s_provision ({err}); run"
                " ansible-playbook from the Python environment where k8s-provision is installed"
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
        if cluster.settings.tls:
            # The certificates role copies from the cluster's PKI: make what is missing of it
            # now (once; every later call finds it complete), never replacing a CA.
            try:
                pki.ensure_pki(cluster, facts.pki_state_dir(cluster))
            except pki.PkiError as err:
                raise AnsibleError("\n".join([err.message, *err.details])) from None
        context = host_context(cluster, host)
        # The cluster facts (units, ports, URLs, interpreters) the roles read, never copy.
        context["facts"] = facts.context(cluster, cluster.host(host))
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
