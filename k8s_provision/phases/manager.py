"""The phase runner: one context, one printing path, and cleanups (the cluster lock's release)
that run on every way out, SIGTERM and SIGHUP included (cli.main turns them into exceptions)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from k8s_provision.fastpath import Decision
from k8s_provision.lifecycle import Change, Removal
from k8s_provision.model import Cluster
from k8s_provision.report import Report
from k8s_provision.runner import EventHandler, RunOptions, RunResult
from k8s_provision.transport import Transport


class Output(Protocol):
    """Where phases print: the terminal (progress.PhaseOutput) or a test's list."""

    def note(self, text: str, style: str = "") -> None: ...

    def status(self, text: str) -> AbstractContextManager[object]: ...

    def playbook(self, title: str, hosts: list[str]) -> AbstractContextManager[EventHandler]: ...

    def report(self, report: Report) -> None: ...


@dataclass
class Context:
    """What an operation's phases share: its inputs, and what earlier phases found."""

    cluster: Cluster
    inventory_path: Path
    options: RunOptions
    transport: Transport
    out: Output
    limit: str | None = None
    hosts: list[str] = field(default_factory=list)  # add-node / remove-node arguments
    force: bool = False
    full: bool = False  # --full: no fast path, site.yml runs
    lock_timeout: float = 0.0
    fastpath: Decision | None = None
    result: RunResult | None = None
    changes: list[Change] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    health: Report | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)


class Phase(Protocol):
    title: str

    def should_run(self, ctx: Context) -> bool: ...

    def run(self, ctx: Context) -> None: ...

    def dry_run(self, ctx: Context) -> None: ...


def run_phases(phases: Sequence[Phase], ctx: Context, *, dry: bool = False) -> Context:
    """Run `phases` in order (their dry runs when `dry`); skip those whose should_run is false;
    run every registered cleanup, last first, however the phases end."""
    try:
        for phase in _selected(phases, ctx):
            (phase.dry_run if dry else phase.run)(ctx)
    finally:
        while ctx.cleanups:
            ctx.cleanups.pop()()
    return ctx


def _selected(phases: Sequence[Phase], ctx: Context) -> Iterator[Phase]:
    # should_run is asked just before each phase: it may depend on what earlier ones found.
    for phase in phases:
        if phase.should_run(ctx):
            yield phase
