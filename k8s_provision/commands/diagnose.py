"""`k8s-provision diagnose`: a support bundle, each fault named with its host, and the fix
(logic in `k8s_provision.diagnose` and `k8s_provision.runbook`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.text import Text

from k8s_provision import diagnose, runbook
from k8s_provision.commands.options import inventory_options, load_inventory
from k8s_provision.diagnose import Finding
from k8s_provision.errors import OperationFailed, UsageError
from k8s_provision.report import counted

_STAGES = {
    "collecting": "collecting from {detail}",
    "done": "[green]collected[/green] in {detail}",
    "failed": "[red]failed[/red]: {detail}",
}
_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow"}


@contextmanager
def _progress(console: Console, hosts: list[str]) -> Iterator[diagnose.Progress]:
    """Per-host progress: a live rich display on a terminal, a plain line per finished host
    elsewhere. On stderr, so stdout holds only the findings (or the --json document)."""
    if not console.is_terminal:
        console.print(f"diagnose: collecting from {len(hosts)} hosts over SSH")

        def plain(host: str, stage: str, detail: str) -> None:
            if stage in ("done", "failed"):
                text = "collected in" if stage == "done" else "failed:"
                console.print(Text(f"diagnose: {host}: {text} {detail}"))

        yield plain
        return
    with Progress(
        SpinnerColumn(), TextColumn("{task.fields[host]}", markup=False),
        TextColumn("{task.description}"),
        console=console,
    ) as live:  # fmt: skip
        width = max(len(h) for h in hosts)
        tasks = {h: live.add_task("waiting", host=h.ljust(width), total=1) for h in hosts}

        def rich(host: str, stage: str, detail: str) -> None:
            text = _STAGES[stage].format(detail=escape(detail))
            live.update(tasks[host], description=text, completed=stage in ("done", "failed"))

        yield rich


def _print_findings(console: Console, findings: tuple[Finding, ...]) -> None:
    if not console.is_terminal:
        click.echo(diagnose.findings_text(findings), nl=False)
        return
    # Text objects, never markup: findings quote the hosts' own output ("[/usr/bin/etcd]").
    for i, f in enumerate(findings, 1):
        console.print(
            Text.assemble(
                f"{i}. ",
                (f.severity.upper(), _SEVERITY_STYLE[f.severity]),
                " ",
                (f.host, "bold"),
                f" {f.component} ",
                (f"[{f.id}]", "dim"),
            )
        )
        console.print(Text(f"   {f.diagnosis}"))
        for j, line in enumerate(f.evidence.splitlines()):
            console.print(Text(f"   {'evidence: ' if j == 0 else '          '}{line}", "dim"))
        console.print("   fix:")
        for line in f.fix:
            console.print(Text(f"     {line}", "cyan"))
        console.print()


def _summary(result: diagnose.Diagnosis) -> str:
    errors = sum(1 for f in result.findings if f.severity == "error")
    warnings = len(result.findings) - errors
    hosts = len(result.collected)
    down = sum(1 for c in result.collected.values() if not c.reachable)
    where = f"{hosts} hosts" + (f" ({down} not collected)" if down else "")
    if not result.findings:
        return f"diagnose: OK, no problems found on {where}"
    verdict = "FAILED" if errors else "OK"
    return (
        f"diagnose: {verdict}, {counted(errors, 'error')}, {counted(warnings, 'warning')}"
        f" on {where}"
    )


@click.command("diagnose")
@click.argument("inventory_path", metavar="INVENTORY", type=click.Path(path_type=Path))
@inventory_options
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the bundle (default ./k8s-provision-diagnose-<UTC time>.tar.gz).",
)
@click.option(
    "--since",
    default="1h",
    show_default=True,
    help="Journal window: a duration (90s, 30m, 1h, 2d) or a date ('2026-01-31 10:00').",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print only {"ok", "findings": [{"host", "component", "id", "severity", "diagnosis",'
    ' "fix", "evidence"}], "bundle"}.',
)
@click.option(
    "--runbook",
    "show_runbook",
    is_flag=True,
    help="Print the manual troubleshooting commands for this cluster instead (no SSH).",
)
def command(
    inventory_path: Path, output: Path | None, since: str, as_json: bool, show_runbook: bool
) -> None:
    """Collect a support bundle from every host of INVENTORY over SSH, in parallel, and name
    each fault found with its host, component and the commands that fix it.

    \b
    The bundle (a tar.gz, mode 0600, secrets redacted) holds per host: systemctl status and
    the journal of each unit of its roles, the configuration files and their diff against
    `render`, ip addr/route, iptables-save, SELinux and firewalld state, df, free, etcd
    membership, health and the flannel keys, and on the master kubectl's view; plus
    manifest.json (hosts, what was collected, errors, findings) and findings.txt.
    An unreachable host is a finding; the others are still collected.

    Findings come from k8s_provision/signatures.yml and are printed most fundamental first;
    each fix line is `HOST# command` (run on HOST as root) or `$ command` (run here).
    Exit 0 when no finding is an error, 1 otherwise, 2 on usage errors.
    """
    cluster = load_inventory(inventory_path)
    if show_runbook:
        if output is not None:
            raise UsageError("--runbook only prints commands; it writes no bundle (drop -o)")
        sections = runbook.runbook(cluster, str(inventory_path), since)
        if as_json:
            click.echo(json.dumps({"runbook": [s.as_dict() for s in sections]}, indent=2))
        else:
            click.echo(runbook.runbook_text(sections), nl=False)
        return
    diagnose.journal_since(since)  # a bad --since is a usage error before any SSH
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    with _progress(errors, [h.name for h in cluster.hosts]) as progress:
        result = diagnose.diagnose(
            cluster, inventory=str(inventory_path), output=output, since=since, progress=progress
        )
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        out = Console(highlight=False, soft_wrap=True)
        if result.findings:
            _print_findings(out, result.findings)
        out.print(Text(_summary(result)))
        out.print(Text(f"bundle: {result.bundle} (mode 0600; it may hold sensitive data)"))
    if not result.ok:
        raise OperationFailed(diagnose.failure_summary(result.findings))
