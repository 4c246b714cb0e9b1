"""A cluster after `up`: plan (what `up` would change), reset, add and remove hosts."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k8s_provision import runner

PACKAGE_ACTIONS = {"package", "yum", "dnf", "apt"}
SERVICE_ACTIONS = {"service", "systemd", "systemd_service"}
# Their changes arrive as diff events; their plain "changed" events would repeat them.
FILE_ACTIONS = {"template", "copy", "file", "lineinfile", "blockinfile", "replace"}


@dataclass(frozen=True)
class Change:
    host: str
    kind: str  # file, package, service or task
    path: str  # file path, package or service name, or task name
    diff: str


def _short(action: str) -> str:
    return action.rsplit(".", 1)[-1]


def _file_diff(entry: dict[str, Any]) -> tuple[str, str] | None:
    if entry.get("prepared"):
        return str(entry.get("after_header") or ""), str(entry["prepared"])
    before, after = entry.get("before"), entry.get("after")
    path = str(entry.get("after_header") or entry.get("before_header") or "")
    if isinstance(before, dict) or isinstance(after, dict):
        old, new = dict(before or {}), dict(after or {})
        path = path or str(new.get("path") or old.get("path") or "")
        lines = [
            f"{k}: {old.get(k)} -> {new.get(k)}" for k in sorted(new) if old.get(k) != new.get(k)
        ]
        return (path, "\n".join(lines)) if lines else None
    if before == after:
        return None
    text = "".join(
        difflib.unified_diff(
            str(before or "").splitlines(keepends=True),
            str(after or "").splitlines(keepends=True),
            fromfile=f"{path} (on the host)",
            tofile=f"{path} (planned)",
        )
    )
    return path, text


def changes_from_events(events: list[dict[str, Any]]) -> list[Change]:
    """Turn a check-mode run's events into per-host changes, in run order, without repeats."""
    changes: list[Change] = []
    for event in events:
        kind = event["event"]
        if kind == "diff" and event.get("changed", True):
            for entry in event.get("diffs", []):
                found = _file_diff(entry)
                if found:
                    changes.append(Change(event["host"], "file", found[0], found[1]))
        elif kind == "ok" and event.get("changed"):
            action = _short(str(event.get("action", "")))
            if action in FILE_ACTIONS:
                continue
            state = str(event.get("state") or "")
            names = event.get("names") or []
            if action in PACKAGE_ACTIONS:
                changes += [Change(event["host"], "package", n, state or "present") for n in names]
            elif action in SERVICE_ACTIONS:
                changes += [Change(event["host"], "service", n, state or "changed") for n in names]
            else:
                changes.append(Change(event["host"], "task", event["task"], "would change"))
    return list(dict.fromkeys(changes))


def plan(
    inventory_path: Path,
    *,
    limit: str | None = None,
    forks: int | None = None,
    verbosity: int = 0,
    on_event: runner.EventHandler | None = None,
    log_dir: Path | None = None,
    become_password: str | None = None,
) -> list[Change]:
    """What `up` would change, from a check-mode run of site.yml with diffs. Changes nothing."""
    result = runner.run_playbook(
        runner.playbook_path("site.yml"),
        inventory_path,
        limit=limit,
        forks=forks,
        verbosity=verbosity,
        check=True,
        diff=True,
        on_event=on_event,
        log_dir=log_dir,
        become_password=become_password,
    )
    runner.raise_for_failure(result)
    return changes_from_events(result.events)


def reset(
    inventory_path: Path,
    *,
    limit: str | None = None,
    forks: int | None = None,
    verbosity: int = 0,
    on_event: runner.EventHandler | None = None,
    log_dir: Path | None = None,
    become_password: str | None = None,
) -> runner.RunResult:
    """Run reset.yml: stop and remove everything site.yml set up. The caller has confirmed."""
    result = runner.run_playbook(
        runner.playbook_path("reset.yml"),
        inventory_path,
        limit=limit,
        forks=forks,
        verbosity=verbosity,
        extra_vars={"k8s_reset_confirm": "yes"},
        on_event=on_event,
        log_dir=log_dir,
        become_password=become_password,
    )
    runner.raise_for_failure(result)
    return result
