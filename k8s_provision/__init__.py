"""k8s-provision: stand up a classic Kubernetes cluster with Ansible and prove it healthy."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Looked up lazily: reading the installed metadata costs ~50 ms, and the lab's SSH relay
    # imports this package for every connection.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("k8s-provision")
        except PackageNotFoundError:  # a checkout that was never installed
            return "0.0.0+unknown"
    raise AttributeError(name)
