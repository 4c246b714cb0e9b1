"""The k8s-provision package for the collection's plugins, imported when a plugin runs, not
when Ansible loads it: ansible-doc and the sanity tests load the plugins where k8s-provision
is not installed."""

from __future__ import annotations

import importlib
from types import ModuleType

from ansible.errors import AnsibleError


def tool_module(name: str, error: type[AnsibleError] = AnsibleError) -> ModuleType:
    """`k8s_provision.<name>`, or `error` saying which Python the playbooks need."""
    try:
        return importlib.import_module(f"k8s_provision.{name}")
    except ImportError as err:
        raise error(
            f"k8s_provision.cluster: cannot import k8s_provision ({err}); run the playbooks"
            " with the Python where k8s-provision is installed"
        ) from None
