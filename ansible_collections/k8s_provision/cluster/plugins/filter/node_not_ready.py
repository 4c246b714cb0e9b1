"""Filter `k8s_provision.cluster.node_not_ready` (documented in node_not_ready.yml): why a node
is not Ready, from an ansible.builtin.uri GET of its Node object, in verify's words (see
k8s_provision.verify.api.node_not_ready); an empty string when it is Ready."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8s_provision.cluster.plugins.plugin_utils.tool import tool_module


def node_not_ready(result: Mapping[str, Any], node: str) -> str:
    api = tool_module("verify.api", AnsibleFilterError)
    status = result.get("status")
    if status == 200:
        return str(api.node_not_ready(node, result.get("json") or {}))
    if status == 404:
        return str(api.node_not_ready(node, None))
    return f"{node}: the API server gave no answer ({result.get('msg') or f'HTTP {status}'})"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"node_not_ready": node_not_ready}
