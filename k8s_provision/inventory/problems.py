"""Collecting validation problems, so the operator sees all of them in one run."""

from __future__ import annotations

from collections.abc import Sequence

from k8s_provision.errors import InventoryError
from k8s_provision.report import counted

# Long lists (duplicate addresses among thousands of hosts) are cut to this many names, so a
# message stays one readable line.
SHOWN_NAMES = 5


def few(names: Sequence[str], shown: int = SHOWN_NAMES) -> str:
    """`a, b, c` or `a, b, c, d, e and 12 more`."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


class Problems:
    """Every line names the inventory, then the host and the field when there is one."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []
        self._seen: set[str] = set()

    def add(self, message: str, host: str | None = None, field: str | None = None) -> None:
        where = [self.source]
        if host is not None:
            where.append(f"host {host}")
        if field is not None:
            where.append(field)
        line = ": ".join([*where, message])
        if line not in self._seen:
            self._seen.add(line)
            self.lines.append(line)

    def raise_if_any(self) -> None:
        if self.lines:
            raise InventoryError(
                f"{self.source}: invalid inventory ({counted(len(self.lines), 'problem')})",
                details=self.lines,
            )
