"""Drift: every rendered file missing on its host or differing from `render`'s bytes."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from k8s_provision import render
from k8s_provision.diagnose.collection import Collected
from k8s_provision.model import Cluster
from k8s_provision.report import counted


@dataclass(frozen=True)
class Drift:
    host: str
    path: str
    component: str
    state: str  # "missing" or "differs"
    diff: str  # unified diff, rendered (expected) -> on the host


def drift(cluster: Cluster, collected: Mapping[str, Collected]) -> list[Drift]:
    """Every rendered file that is missing on its host or differs from `render`'s bytes."""
    env = render.template_environment()
    drifts: list[Drift] = []
    for host in cluster.hosts:
        got = collected.get(host.name)
        if got is None or not got.reachable:
            continue
        expected = render.render_host(cluster, host.name, env)
        for planned in render.planned_files(cluster, host):
            output = got.output(f"file:{planned.dest}")
            if output is None:
                continue
            if output.exit_code != 0:
                if "No such file" in output.stderr:
                    drifts.append(Drift(host.name, planned.dest, planned.component, "missing", ""))
                continue  # unreadable: recorded as a collection error, not judged
            want = expected[planned.dest]
            if output.stdout == want:
                continue
            diff = "".join(
                difflib.unified_diff(
                    want.splitlines(keepends=True),
                    output.stdout.splitlines(keepends=True),
                    fromfile=f"rendered/{host.name}{planned.dest}",
                    tofile=f"{host.name}:{planned.dest}",
                )
            )
            drifts.append(Drift(host.name, planned.dest, planned.component, "differs", diff))
    return drifts


def diff_stat(diff: str) -> str:
    lines = diff.splitlines()
    added = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
    removed = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
    return f"{counted(added, 'line')} added, {removed} removed"
