"""Live progress of a playbook run: on a terminal a rich table of the current play and task
with per-host ok/changed/failed counts; elsewhere (logs, CI) one plain line per play and per
failure."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from k8s_provision.report import Report, print_report

COLUMNS = ("ok", "changed", "failed", "unreachable", "skipped")


def operator_console(*, stderr: bool = False) -> Console:
    """The console every operation prints through. Markup is off: host output, task names
    and error messages hold brackets (`[/usr/bin/etcd]`) that rich would read as tags, then
    fail or hide text. Styles are given as `style=` or with `Text`, never inline."""
    return Console(stderr=stderr, markup=False, highlight=False, soft_wrap=True)


class PlaybookProgress:
    """Consumes runner events (call the instance with each event); use as a context manager."""

    def __init__(self, console: Console, hosts: list[str], title: str) -> None:
        self.console = console
        self.title = title
        self.play = ""
        self.task = ""
        self.counts = {host: dict.fromkeys(COLUMNS, 0) for host in hosts}
        self.live: Live | None = None

    def __enter__(self) -> PlaybookProgress:
        if self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=8)
            self.live.__enter__()
        else:
            self.console.print(f"{self.title}: running", markup=False)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.live is not None:
            self.live.update(self._render(final=True))
            self.live.__exit__(exc_type, exc, tb)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "play":
            self.play = event["name"]
            if self.live is None:
                self.console.print(f"play: {self.play}", highlight=False, markup=False)
        elif kind == "task":
            self.task = event["name"]
        elif kind in ("ok", "failed", "unreachable", "skipped"):
            counts = self.counts.setdefault(event["host"], dict.fromkeys(COLUMNS, 0))
            if kind == "ok":
                counts["changed" if event.get("changed") else "ok"] += 1
            elif kind == "failed" and event.get("ignored"):
                counts["ok"] += 1
            else:
                counts[kind] += 1
            if kind in ("failed", "unreachable") and not event.get("ignored"):
                message = (event.get("msg") or "").splitlines()
                first = message[0] if message else ""
                self.console.print(
                    f"{kind}: {event['host']}: {event['task']}: {first}",
                    style="red",
                    highlight=False,
                    markup=False,
                )
        if self.live is not None:
            self.live.update(self._render())

    def _render(self, final: bool = False) -> Group:
        table = Table(box=None, pad_edge=False)
        table.add_column("host")
        for column in COLUMNS:
            table.add_column(column, justify="right")
        for host, counts in self.counts.items():
            styles = {"changed": "yellow", "failed": "red", "unreachable": "red"}
            cells = [
                Text(str(counts[c]), style=styles.get(c, "") if counts[c] else "dim")
                for c in COLUMNS
            ]
            table.add_row(Text(host), *cells)
        heading = Text(self.title, style="bold")
        if not final:
            heading.append(f"  play: {self.play}  task: {self.task}", style="cyan")
        return Group(heading, table)


class PhaseOutput:
    """The one printing path of every operation (phases.manager.Output) on a console."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def note(self, text: str, style: str = "") -> None:
        self.console.print(text, style=style)

    def status(self, text: str) -> AbstractContextManager[object]:
        return self.console.status(text)

    @contextmanager
    def playbook(self, title: str, hosts: list[str]) -> Iterator[PlaybookProgress]:
        with PlaybookProgress(self.console, hosts, title) as progress:
            yield progress

    def report(self, report: Report) -> None:
        print_report(report, as_json=False, what="verify")
