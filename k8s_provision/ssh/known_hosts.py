"""known_hosts read as OpenSSH reads it, for the CLI's own SSH: hashed names, wildcard and
negated patterns, `[host]:port` names, and the @revoked and @cert-authority markers. paramiko's
HostKeys knows none of the markers (a marker line is skipped or breaks the load), so a revoked
key would pass; here it is refused. paramiko cannot check host certificates, so a host trusted
only through a @cert-authority line is refused with a sentence saying so."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

REVOKED = "@revoked"
CERT_AUTHORITY = "@cert-authority"


@dataclass(frozen=True)
class Entry:
    marker: str | None
    patterns: tuple[str, ...]
    key_type: str
    blob: bytes
    where: str  # file:line, for messages

    def matches(self, name: str) -> bool:
        """OpenSSH's rule: some pattern matches and no negated (!) pattern does."""
        matched = False
        for pattern in self.patterns:
            negated = pattern.startswith("!")
            if _pattern_matches(pattern[1:] if negated else pattern, name):
                if negated:
                    return False
                matched = True
        return matched

    def key(self) -> paramiko.PKey | None:
        try:
            return paramiko.PKey.from_type_string(self.key_type, self.blob)
        except (paramiko.SSHException, ValueError, TypeError):
            return None  # a key type paramiko cannot read; OpenSSH would still use it


def _pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        _, _, salt, digest = pattern.split("|", 3)
        try:
            mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
            return hmac.compare_digest(mac, base64.b64decode(digest))
        except (binascii.Error, ValueError):
            return False
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == name.lower()
    return _wildcard(pattern.lower()).fullmatch(name.lower()) is not None


@functools.lru_cache(maxsize=1024)
def _wildcard(pattern: str) -> re.Pattern[str]:
    """OpenSSH's patterns know only * and ?; fnmatch would read `[host]:port` as a class.
    Compiled once: every connection checks every entry of the file against its host."""
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    )


def parse_line(line: str, where: str) -> Entry | None:
    words = line.split()
    if not words or words[0].startswith("#"):
        return None
    marker = words[0] if words[0].startswith("@") else None
    if marker is not None:
        words = words[1:]
    if len(words) < 3:
        return None
    try:
        blob = base64.b64decode(words[2], validate=True)
    except binascii.Error:
        return None
    return Entry(marker, tuple(words[0].split(",")), words[1], blob, where)


class KnownHosts:
    """Every entry of the known_hosts files that exist among `paths`, in order."""

    def __init__(self, paths: Sequence[str], entries: Iterable[Entry]) -> None:
        self.paths = tuple(paths)
        self.entries = list(entries)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, paths: Sequence[str]) -> KnownHosts:
        entries: list[Entry] = []
        for path in paths:
            try:
                text = Path(path).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue  # OpenSSH too reads only the files that exist
            for number, line in enumerate(text.splitlines(), 1):
                entry = parse_line(line, f"{path}:{number}")
                if entry is not None:
                    entries.append(entry)
        return cls(paths, entries)

    def revoked(self, name: str, key: paramiko.PKey) -> Entry | None:
        blob = key.asbytes()
        for entry in self.entries:
            if entry.marker == REVOKED and entry.blob == blob and entry.matches(name):
                return entry
        return None

    def authority_for(self, name: str) -> Entry | None:
        return next(
            (e for e in self.entries if e.marker == CERT_AUTHORITY and e.matches(name)), None
        )

    def host_entries(self, name: str) -> list[Entry]:
        """The plain entries for `name`, without any key that a @revoked line revokes."""
        revoked = {e.blob for e in self.entries if e.marker == REVOKED and e.matches(name)}
        return [
            e
            for e in self.entries
            if e.marker is None and e.blob not in revoked and e.matches(name)
        ]

    def install(self, client: paramiko.SSHClient, name: str) -> None:
        """Give paramiko exactly the keys OpenSSH would accept for `name`, filed under the
        name paramiko looks up, so its own (marker-blind, wildcard-blind) lookup agrees."""
        keys = client.get_host_keys()
        for entry in self.host_entries(name):
            key = entry.key()
            if key is not None:
                keys.add(name, key.get_name(), key)

    def append(self, path: Path, name: str, key: paramiko.PKey) -> None:
        """Record a newly accepted key, as `ssh -o StrictHostKeyChecking=accept-new` does."""
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(f"{name} {key.get_name()} {key.get_base64()}\n")
            self.entries.append(Entry(None, (name,), key.get_name(), key.asbytes(), f"{path}:new"))


class HostKeyRefused(paramiko.SSHException):
    """A host key that is unknown, revoked or vouched for only by a certificate authority.
    The message is the sentence for the operator."""


class CheckingPolicy(paramiko.MissingHostKeyPolicy):
    """paramiko calls this only for a host with no known key (a changed key raises
    BadHostKeyException before). Refuse, unless the operator named a file to accept new keys
    into: then record the key there, as OpenSSH's accept-new does."""

    def __init__(self, known: KnownHosts, accept_into: Path | None) -> None:
        self.known = known
        self.accept_into = accept_into

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        entry = self.known.revoked(hostname, key)
        if entry is not None:
            raise HostKeyRefused(
                f"the {key.get_name()} host key of {hostname} is revoked ({entry.where});"
                " refusing to connect"
            )
        if self.accept_into is not None:
            self.known.append(self.accept_into, hostname, key)
            return
        authority = self.known.authority_for(hostname)
        if authority is not None:
            raise HostKeyRefused(
                f"{hostname} is trusted only through a @cert-authority line ({authority.where}),"
                " and the CLI's SSH (paramiko) cannot check host certificates: add the host's"
                f" own key to {self.known.paths[0]}"
            )
        files = ", ".join(self.known.paths) or "no known_hosts file"
        raise HostKeyRefused(
            f"host key of {hostname} is unknown (not in {files}); verify it and add it, or"
            " pass --accept-new-host-keys FILE to accept new hosts' keys into FILE"
        )
