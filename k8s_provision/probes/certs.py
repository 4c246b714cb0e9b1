"""The PKI files on a host as `certs check` reads them: owner, mode and SHA-256 of each, and
the PEM of each certificate (public). Keys and kubeconfigs are never read off the host: their
digest is compared with the controller's copy."""

from __future__ import annotations

from collections.abc import Sequence

from k8s_provision.probes import files as file_probes
from k8s_provision.probes.base import Output, Probe
from k8s_provision.probes.files import FileState


def files(paths: Sequence[str]) -> Probe[dict[str, FileState] | None]:
    certificates = [p for p in paths if p.endswith(".crt")]

    def parse(output: Output) -> dict[str, FileState] | None:
        return file_probes.parse(output, paths) if output.exit_code == 0 else None

    return Probe("pki-files", file_probes.script(paths, show=certificates), parse)
