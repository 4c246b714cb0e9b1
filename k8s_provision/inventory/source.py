"""Checks on the inventory's files before ansible-core reads them.

ansible-core would block forever on a FIFO, read /dev/zero until memory runs out, expand
`node[0:99999999]` into a hundred million hosts and follow a YAML alias bomb; these checks
bound all of that in time and memory, and find the vault-encrypted files."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from k8s_provision.errors import InventoryError

# Far above any real inventory (kubespray's whole sample is about 100 KB).
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_FILES = 2000
MAX_HOSTS_FROM_RANGES = 20000
# Nodes a YAML document may expand to once its aliases are followed.
MAX_YAML_NODES = 1_000_000

_VAULT_HEADER = b"$ANSIBLE_VAULT;"
_RANGE_RE = re.compile(rb"\[([0-9]+|[a-z]):([0-9]+|[a-z])(?::([0-9]+))?\]")
_ALIAS_RE = re.compile(rb"(?:^|[\s\[{,:-])\*[^\s,\[\]{}]+")
_VAR_DIRS = ("group_vars", "host_vars")


@dataclass(frozen=True)
class SourceFiles:
    """What the pre-scan found: the vault-encrypted files (whole or with !vault values)."""

    encrypted: tuple[Path, ...]


def _kind(path: Path) -> str:
    mode = path.stat().st_mode
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _files(root: Path) -> Iterator[Path]:
    """Every entry under `root` (a bounded walk, so a huge tree cannot stall the load)."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        # Hidden directories (.git) are no part of an inventory; ansible-core skips them too.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            count += 1
            if count > MAX_FILES:
                raise InventoryError(f"{root}: more than {MAX_FILES} files; is this an inventory?")
            yield Path(dirpath) / name


def _range_hosts(data: bytes) -> int:
    """Hosts one line's `[a:b]` patterns expand to, multiplied as Ansible multiplies them."""
    worst = 0
    for line in data.splitlines():
        total = 1
        for match in _RANGE_RE.finditer(line):
            start, end, step = match.group(1), match.group(2), match.group(3)
            if start.isdigit() and end.isdigit():
                span = (int(end) - int(start)) // max(int(step or 1), 1) + 1
            else:
                span = abs(ord(end) - ord(start)) + 1
            total *= max(span, 1)
        worst = max(worst, total if _RANGE_RE.search(line) else 0)
    return worst


def _check_file(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise InventoryError(f"{path}: {_kind(path)}; {what} must be a regular file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InventoryError(
            f"{path}: {size} bytes; an inventory file over {MAX_FILE_BYTES} bytes is refused"
        )
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise InventoryError(f"{path}: cannot read: {err.strerror}") from None
    if _range_hosts(data) > MAX_HOSTS_FROM_RANGES:
        raise InventoryError(
            f"{path}: a host range expands to more than {MAX_HOSTS_FROM_RANGES} hosts"
        )
    if b"&" in data and _ALIAS_RE.search(data) and _yaml_nodes(data) > MAX_YAML_NODES:
        raise InventoryError(
            f"{path}: its YAML aliases expand to more than {MAX_YAML_NODES} nodes; refused so a"
            " billion-laughs document cannot exhaust memory"
        )
    return data


def _yaml_nodes(data: bytes) -> int:
    """How many nodes the document has with every alias expanded, counted on the composed
    graph (where an alias is one shared node), so the count itself stays cheap. Only files
    with anchors and aliases get here; text that is not YAML counts as small."""
    try:
        root = yaml.compose(data, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return 0
    except RecursionError:  # nested deeper than Python's stack: as refusable as a bomb
        return MAX_YAML_NODES + 1
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key not in sizes:
            sizes[key] = 1  # guards against a recursive alias
            if isinstance(node, yaml.SequenceNode):
                sizes[key] = 1 + sum(size(child) for child in node.value)
            elif isinstance(node, yaml.MappingNode):
                sizes[key] = 1 + sum(size(k) + size(v) for k, v in node.value)
        return sizes[key]

    try:
        return size(root) if root is not None else 0
    except RecursionError:
        return MAX_YAML_NODES + 1


def _ignored_suffixes() -> tuple[str, ...]:
    from ansible import constants as C

    return tuple(str(ext) for ext in C.INVENTORY_IGNORE_EXTS)


def check_source(path: Path) -> SourceFiles:
    """Refuse what is not an inventory, before ansible-core opens anything."""
    if not path.exists():
        raise InventoryError(f"{path}: no such file or directory")
    encrypted: list[Path] = []
    if path.is_dir():
        files = list(_files(path))
    elif path.is_file():
        data = _check_file(path, "an inventory")
        if not data.strip():
            raise InventoryError(f"{path}: the inventory is empty")
        if b"\0" in data:
            raise InventoryError(f"{path}: binary data, not an INI or YAML inventory")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InventoryError(f"{path}: not UTF-8 text (byte {err.start})") from None
        if data.startswith(_VAULT_HEADER) or b"!vault" in data:
            encrypted.append(path)
        files = []
        for name in _VAR_DIRS:
            if (path.parent / name).is_dir():
                files += _files(path.parent / name)
    else:
        raise InventoryError(
            f"{path}: {_kind(path)}; an inventory must be a regular file or a directory"
        )
    ignored = _ignored_suffixes()
    for file in files:
        if file.is_symlink() and not file.exists():
            continue
        if file.name.endswith(ignored) and file.is_file():
            continue  # ansible-core never reads it (a README.md, a .bak)
        data = _check_file(file, "every file of an inventory")
        if data.startswith(_VAULT_HEADER) or b"!vault" in data:
            encrypted.append(file)
    return SourceFiles(encrypted=tuple(encrypted))
