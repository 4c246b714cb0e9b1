"""k8s-provision: stand up a classic Kubernetes cluster with Ansible and prove it healthy."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("k8s-provision")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+unknown"
