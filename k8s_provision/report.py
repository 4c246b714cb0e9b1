"""Check results and how they are printed: a JSON document, a rich table on a terminal, plain
aligned text otherwise. Shared by the commands that prove things about hosts (verify)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

Status = Literal["pass", "fail", "warn", "skip"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "warn", "skip")
_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


def counted(count: int, noun: str) -> str:
    """`1 host`, `3 hosts`: for the nouns here, whose plural adds an s."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Check:
    """One finding about one host. `check` is a stable short identifier (`unit:etcd`,
    `etcd:health`, ...); `detail` is the sentence an operator reads."""

    host: str
    check: str
    status: Status
    detail: str


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == "fail")

    def counts(self) -> dict[Status, int]:
        counted = Counter(c.status for c in self.checks)
        return {status: counted[status] for status in STATUSES}

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def summary(report: Report, what: str) -> str:
    counts = report.counts()
    parts = [
        f"{counts['pass']} passed",
        f"{counts['fail']} failed",
        counted(counts["warn"], "warning"),
        f"{counts['skip']} skipped",
    ]
    verdict = "OK" if report.ok else "FAILED"
    return f"{what}: {verdict} ({', '.join(parts)})"


def plain_table(checks: Iterable[Check]) -> str:
    rows = [("HOST", "CHECK", "STATUS", "DETAIL")]
    rows += [(c.host, c.check, c.status.upper(), c.detail) for c in checks]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]])
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def print_report(report: Report, *, as_json: bool, what: str) -> None:
    """`--json`: exactly the report document on stdout. Otherwise a table (rich on a terminal,
    plain text when piped) and a one-line summary."""
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    console = Console()
    if console.is_terminal:
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        for column in ("HOST", "CHECK", "STATUS"):
            table.add_column(column, no_wrap=True)
        table.add_column("DETAIL", overflow="fold")
        # Text objects, never markup: a detail quotes the hosts' own output ("[/usr/bin/etcd]").
        for c in report.checks:
            status = Text(c.status.upper(), style=_STYLE[c.status])
            table.add_row(Text(c.host), Text(c.check), status, Text(c.detail))
        console.print(table)
        console.print(Text(summary(report, what), style="green" if report.ok else "bold red"))
        return
    click.echo(plain_table(report.checks))
    click.echo(summary(report, what))
