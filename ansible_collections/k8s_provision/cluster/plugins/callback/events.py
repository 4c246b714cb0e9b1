"""Callback `k8s_provision.cluster.events`: writes one JSON object per playbook event to the
inherited pipe whose descriptor K8SP_EVENTS_FD names, so k8s-provision can show live progress
and name failures while the normal Ansible output goes to the log. Results of `no_log` tasks
arrive censored from ansible-core and are never written."""

from __future__ import annotations

DOCUMENTATION = """
name: events
author: k8s-provision maintainers !UNKNOWN
type: notification
short_description: JSON-lines playbook events for k8s-provision
description:
  - Writes play, task, result, diff and stats events, one JSON object a line, to the inherited
    pipe whose descriptor E(K8SP_EVENTS_FD) names; k8s-provision enables it for its own runs to
    show progress and name failures. Writes nothing when the variable is unset.
requirements:
  - enable in callbacks_enabled
"""

import ctypes
import json
import os
import signal
import sys
from typing import Any

from ansible.plugins.callback import CallbackBase

# prctl(2) option number (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


def _die_with(playbook: int) -> None:
    """In each worker ansible-playbook forks: SIGTERM (which the worker turns into stopping its
    own process group) when ansible-playbook dies. Its SIGTERM handler stops the workers it
    knows, but one forked at that very moment is missed, and stays blocked for ever on the
    result queue nobody reads. A process forked by a worker is not concerned."""
    if os.getppid() != playbook:
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != playbook:  # ansible-playbook died before prctl took effect
        os._exit(1)


def _host(result: Any) -> str:
    host = getattr(result, "host", None) or result._host
    return str(host.get_name())


def _task(result: Any) -> str:
    task = getattr(result, "task", None) or result._task
    return str(task.get_name())


def _data(result: Any) -> dict[str, Any]:
    data = getattr(result, "result", None)
    return dict(data if data is not None else result._result)


def _message(data: dict[str, Any]) -> str:
    """The line an operator needs: the module's msg, with the command's stderr when it has one."""
    msg = str(data.get("msg") or "").strip()
    stderr = str(data.get("stderr") or data.get("module_stderr") or "").strip()
    if stderr:
        last = stderr.splitlines()[-1]
        msg = f"{msg}: {last}" if msg else last
    if msg:
        return msg
    results = data.get("results")
    if isinstance(results, list):
        for item in results:
            if isinstance(item, dict) and item.get("failed"):
                return _message(item)
    return str(data.get("reason") or "")


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "k8s_provision.cluster.events"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        fd = os.environ.get("K8SP_EVENTS_FD")
        # Line-buffered: each event reaches k8s-provision as soon as it happens.
        self._out = os.fdopen(int(fd), "w", encoding="utf-8", buffering=1) if fd else None
        if fd and sys.platform.startswith("linux"):
            playbook = os.getpid()
            os.register_at_fork(after_in_child=lambda: _die_with(playbook))

    def _emit(self, event: str, **fields: Any) -> None:
        if self._out is not None:
            self._out.write(json.dumps({"event": event, **fields}, default=str) + "\n")

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._emit("play", name=play.get_name().strip())

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._emit("task", name=task.get_name().strip())

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._emit("task", name=task.get_name().strip(), handler=True)

    def v2_runner_on_ok(self, result: Any) -> None:
        data = _data(result)
        changed = bool(data.get("changed"))
        extra: dict[str, Any] = {}
        if changed:
            # What changed, for `plan`: the module and the names it acted on.
            task = getattr(result, "task", None) or result._task
            args = (data.get("invocation") or {}).get("module_args") or {}
            extra = {
                "action": str(task.action),
                "names": _names(data),
                "state": args.get("state"),
                "tags": [str(tag) for tag in task.tags],
                "msg": str(data.get("msg") or ""),
            }
        self._emit("ok", host=_host(result), task=_task(result), changed=changed, **extra)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        data = _data(result)
        self._emit(
            "failed",
            host=_host(result),
            task=_task(result),
            msg=_message(data),
            ignored=ignore_errors,
        )

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._emit(
            "unreachable", host=_host(result), task=_task(result), msg=_message(_data(result))
        )

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._emit("skipped", host=_host(result), task=_task(result))

    def v2_on_file_diff(self, result: Any) -> None:
        data = _data(result)
        diffs = data.get("diff") or []
        if isinstance(diffs, dict):
            diffs = [diffs]
        if "results" in data:
            diffs = [
                d for r in data["results"] if isinstance(r, dict) for d in _as_list(r.get("diff"))
            ]
        self._emit(
            "diff",
            host=_host(result),
            task=_task(result),
            diffs=diffs,
            changed=bool(data.get("changed")),
        )

    def v2_playbook_on_stats(self, stats: Any) -> None:
        hosts = {}
        for host in sorted(stats.processed):
            summary = stats.summarize(host)
            hosts[host] = {
                k: summary.get(k, 0)
                for k in (
                    "ok",
                    "changed",
                    "failures",
                    "unreachable",
                    "skipped",
                    "rescued",
                    "ignored",
                )
            }
        self._emit("stats", hosts=hosts)


def _names(data: dict[str, Any]) -> list[str]:
    """The `name` argument(s) a package or service module acted on, per loop item too."""
    items = data.get("results") if isinstance(data.get("results"), list) else [data]
    names: list[str] = []
    for item in items:
        if not isinstance(item, dict) or (item is not data and not item.get("changed")):
            continue
        args = (item.get("invocation") or {}).get("module_args") or {}
        for name in _as_list(args.get("name")):
            names.append(str(name))
    return names


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
