"""The strict shapes inventory values must have where they enter the model.

Every value here ends up as a path part, a line of an environment file, a word of a command,
a node or etcd member name or an /etc/hosts entry, so each is checked against an allow-list
rather than a deny-list."""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Any

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}

# An inventory host name: a path part under `render -o`, an etcd member name, an /etc/hosts
# alias. Letters, digits, `.`, `_`, `-`, starting and ending with a letter or digit, which
# also rules out `.` and `..`.
HOST_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$")
# Kubernetes node names are lowercase RFC 1123 subdomains (validation.IsDNS1123Subdomain).
_DNS1123_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
NODE_NAME_RE = re.compile(rf"^{_DNS1123_LABEL}(?:\.{_DNS1123_LABEL})*$")
# etcd member names end up in ETCD_NAME and ETCD_INITIAL_CLUSTER (`name=url,...`).
TOKEN_RE = re.compile(r"^[A-Za-z0-9._-]+$")
# Linux interface names: at most 15 bytes; no `/`, no whitespace.
IFACE_RE = re.compile(r"^[A-Za-z0-9._@-]{1,15}$")
# Where SSH connects: an IP address (v4 or v6) or a DNS name.
SSH_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
USER_RE = re.compile(r"^[A-Za-z0-9._@][A-Za-z0-9._@-]*$")
# Words of extra command-line arguments in an environment file that systemd splits on
# whitespace: no quotes, backslashes, `$`, backquotes or shell operators.
ARGS_RE = re.compile(r"^[A-Za-z0-9 ,._:=/@+%*-]*$")
IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")
ADMISSION_RE = re.compile(r"^[A-Za-z0-9]+(?:,[A-Za-z0-9]+)*$")
URL_RE = re.compile(
    r"^(?:https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?|file://)(?:/[A-Za-z0-9._~%+/-]*)?$"
)
_PATH_CHARS_RE = re.compile(r"^[A-Za-z0-9._@+/-]+$")
# Control characters are never acceptable: they break a line or a terminal.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

# Directories a data directory must never be: reset removes it, and etcd owns it whole.
SYSTEM_DIRS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",  # noqa: S108 -- listed to be refused, not used
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/local",
        "/usr/sbin",
        "/var",
        "/var/lib",
        "/var/log",
        "/var/run",
        "/var/tmp",  # noqa: S108 -- listed to be refused, not used
        "/etc/kubernetes",
        "/etc/etcd",
    }
)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_ipv6(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv6Address)
    except ValueError:
        return False


def has_control(value: str) -> bool:
    return bool(_CONTROL_RE.search(value))


def shown(value: str, limit: int = 60) -> str:
    """A value for a message: repr (so newlines and quotes are visible), cut when long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...'"


def coerce(value: Any, kind: type) -> Any:
    """Turn an inventory value (INI gives strings) into the variable's type, or raise ValueError."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{shown(str(value))} is not a boolean (use true or false)")
    if kind is int:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a whole number")
        text = str(value).strip()
        # int() accepts thousands of digits; a port or level never needs more than a few.
        if len(text) > 9:
            raise ValueError(f"{shown(text)} is not a whole number in range")
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{shown(text)} is not a whole number") from None
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise ValueError(f"expected a string, got a {type(value).__name__}")
    return str(value)


def dedicated_dir_problem(value: str) -> str | None:
    """Why `value` is not an absolute, normalised directory of its own, or None."""
    if not value.startswith("/"):
        return f"{shown(value)} is not an absolute path"
    if not _PATH_CHARS_RE.match(value):
        return f"{shown(value)} may hold only letters, digits and . _ @ + - /"
    if posixpath.normpath(value) != value or "//" in value:
        return f"{shown(value)} is not normalised (no ., .., // or trailing /)"
    if value in SYSTEM_DIRS:
        return f"{value} is a system directory; use a directory of its own, like /var/lib/etcd"
    return None


def key_path_problem(value: str) -> str | None:
    """Why `value` is not a normalised absolute etcd key path like /atomic.io/network."""
    parts = value.split("/")
    if (
        len(parts) < 2
        or parts[0] != ""
        or any(p in ("", ".", "..") or not TOKEN_RE.match(p) for p in parts[1:])
    ):
        return (
            f"{shown(value)} is not an absolute etcd key path like /atomic.io/network"
            " (leading /, no trailing /, no . or .. part, letters, digits, . _ -)"
        )
    return None
