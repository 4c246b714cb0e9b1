"""Redaction of everything diagnose writes or prints."""

from __future__ import annotations

import re
from collections.abc import Iterable

from k8s_provision import ssh
from k8s_provision.model import Cluster

REDACTED = "<redacted>"

_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----", re.DOTALL
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
_ASSIGNMENT = re.compile(
    r"(?i)(?P<name>[\w.-]*(?:password|passwd|token|secret|key)[\w.-]*)(?P<quote>[\"']?)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s,;&\"'}]+)"
)


def _redact_assignment(match: re.Match[str]) -> str:
    value = match["value"]
    bare = value.strip("\"'")
    # A path is a file name or an etcd prefix (FLANNEL_ETCD_KEY=/atomic.io/network,
    # --service-account-key-file=/etc/...), never the secret itself: keep it for diagnosis.
    if not bare or bare.startswith("/") or bare == REDACTED:
        return match.group(0)
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['name']}{match['quote']}{match['sep']}{quote}{REDACTED}{quote}"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Hide secrets: known secret values anywhere (the etcd cluster token, a sudo password),
    private keys, bearer tokens, and the value of anything named password/token/secret/key."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _PRIVATE_KEY.sub("<redacted private key>", text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _ASSIGNMENT.sub(_redact_assignment, text)


def cluster_secrets(cluster: Cluster) -> tuple[str, ...]:
    password = ssh.become_password()
    return tuple(s for s in (cluster.settings.etcd_cluster_token, password) if s)
