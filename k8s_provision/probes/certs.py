"""The PKI files on a host as `certs check` reads them: owner, mode and SHA-256 of each, and
the PEM of each certificate (public). Keys and kubeconfigs are never read off the host: their
digest is compared with the controller's copy."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from k8s_provision.probes.base import Output, Probe

_MARK = "@@pki "


@dataclass(frozen=True)
class FileState:
    path: str
    present: bool
    owner: str = ""
    mode: str = ""  # as stat's %a prints it: "600"
    sha256: str = ""
    pem: str = ""  # certificates only


def files(paths: Sequence[str]) -> Probe[dict[str, FileState] | None]:
    parts = []
    for path in paths:
        quoted = shlex.quote(path)
        show = f"cat -- {quoted}" if path.endswith(".crt") else ":"
        parts.append(
            f"printf '%s%s\\n' {shlex.quote(_MARK)} {quoted};"
            f" if test -f {quoted}; then stat -c '%U %a' -- {quoted};"
            f" sha256sum < {quoted} | cut -d' ' -f1; {show}; else echo missing; fi"
        )
    return Probe("pki-files", "; ".join(parts) or "true", parse_files)


def parse_files(output: Output) -> dict[str, FileState] | None:
    if output.exit_code != 0:
        return None
    found: dict[str, FileState] = {}
    for block in output.stdout.split(_MARK)[1:]:
        path, _, rest = block.partition("\n")
        lines = rest.splitlines()
        if not lines or lines[0] == "missing":
            found[path] = FileState(path, False)
            continue
        owner, _, mode = lines[0].partition(" ")
        digest = lines[1].strip() if len(lines) > 1 else ""
        pem = "\n".join(lines[2:]).strip()
        found[path] = FileState(path, True, owner, mode, digest, pem + "\n" if pem else "")
    return found
