"""site.yml as data: its plays, the tasks of their roles (include_tasks and include_role
followed) and the roles' variables, evaluated for one host with the same `k8s` context the
`k8s_provision.cluster.context` lookup hands the roles.

The fingerprint takes what a host must hold from here (packages, units, kernel settings, ...)
instead of from a second hand-kept list, and the coverage test walks the same tasks to prove
that every state-changing task maps to a fingerprint entry.

Role variables are rendered with Jinja2's native types and the handful of Ansible filters
they use. A value that needs what only a run knows (a registered result, a gathered fact) is
`RUNTIME`: such a `when` only decides whether the action is needed now, so the converged state
is the one the task aims at."""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import yaml
from jinja2.nativetypes import NativeEnvironment

from k8s_provision.paths import COLLECTION, collection_dir, playbooks_dir


class _Runtime:
    def __repr__(self) -> str:
        return "RUNTIME"


RUNTIME: Any = _Runtime()  # the value of an expression that only a run can evaluate

# Modules that never change a host (reads, control flow, facts on the controller).
READ_ONLY_MODULES = frozenset(
    {
        "assert",
        "async_status",
        "debug",
        "fail",
        "find",
        "group_by",
        "meta",
        "set_fact",
        "setup",
        "slurp",
        "stat",
    }
)
_INCLUDES = frozenset({"include_tasks", "import_tasks", "include_role", "import_role"})
_TASK_KEYS = frozenset(
    {
        "name",
        "when",
        "loop",
        "loop_control",
        "register",
        "notify",
        "listen",
        "changed_when",
        "failed_when",
        "check_mode",
        "delegate_to",
        "run_once",
        "until",
        "retries",
        "delay",
        "async",
        "poll",
        "vars",
        "tags",
        "become",
        "ignore_errors",
        "block",
        "rescue",
        "always",
        "any_errors_fatal",
    }
)


@dataclass(frozen=True)
class Task:
    """One task of a role (or handler), with the conditions of the includes that lead to it."""

    role: str
    source: str  # roles/<role>/tasks/<file>.yml
    name: str
    module: str  # short name: template, systemd_service, ...
    args: Mapping[str, Any]
    data: Mapping[str, Any]  # the whole task as written
    conditions: tuple[str, ...]  # every `when` on the way, the task's own last
    variables: Mapping[str, Any] = field(default_factory=dict)  # `vars:` of the includes

    @property
    def changes_state(self) -> bool:
        if self.module in READ_ONLY_MODULES or self.module in _INCLUDES:
            return False
        if self.module == "systemd_service":
            # Without state or enabled it reads the unit, or only reloads systemd. An async
            # start reports changed_when false and still starts the unit.
            return bool({"state", "enabled"} & set(self.args))
        if self.module == "uri":
            return str(self.args.get("method", "GET")).upper() != "GET"
        return self.data.get("changed_when") is not False


@dataclass(frozen=True)
class Play:
    hosts: str  # a canonical group the preflight play creates (k8s_cluster, k8s_etcd, ...)
    roles: tuple[str, ...]


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _module(data: Mapping[str, Any]) -> tuple[str, Any]:
    for key, value in data.items():
        if key not in _TASK_KEYS:
            return key.rsplit(".", 1)[-1], value
    return "block" if "block" in data else "", {}


def _conditions(data: Mapping[str, Any]) -> tuple[str, ...]:
    when = data.get("when")
    if when is None:
        return ()
    return tuple(str(w) for w in (when if isinstance(when, list) else [when]))


def _role_name(name: str) -> str:
    """The collection's roles go by their FQCN in plays and include_role."""
    return name.removeprefix(f"{COLLECTION}.")


@functools.cache
def plays() -> tuple[Play, ...]:
    """The plays of site.yml after the imported preflight play."""
    found = []
    for play in _load(playbooks_dir() / "site.yml"):
        if "roles" not in play:  # the imported preflight play
            continue
        roles = tuple(
            _role_name(r["role"] if isinstance(r, dict) else str(r)) for r in play["roles"]
        )
        found.append(Play(str(play["hosts"]), roles))
    return tuple(found)


def _walk(
    role: str,
    path: Path,
    items: list[Any],
    conditions: tuple[str, ...],
    variables: Mapping[str, Any],
) -> Iterator[Task]:
    for data in items:
        own = (*conditions, *_conditions(data))
        module, args = _module(data)
        task_vars = {**variables, **(data.get("vars") or {})}
        if module == "block":
            for key in ("block", "rescue", "always"):
                yield from _walk(role, path, data.get(key) or [], own, task_vars)
            continue
        if module in ("include_tasks", "import_tasks"):
            target = path.parent / str(args if isinstance(args, str) else args["file"])
            yield from _walk(role, target, _load(target) or [], own, task_vars)
            continue
        if module in ("include_role", "import_role"):
            name = _role_name(str(args["name"]))
            target = collection_dir() / "roles" / name / "tasks" / "main.yml"
            yield from _walk(name, target, _load(target) or [], own, task_vars)
        yield Task(
            role=role,
            source=str(path.relative_to(collection_dir())),
            name=str(data.get("name", "")),
            module=module,
            args=args if isinstance(args, dict) else {"_raw": args},
            data=data,
            conditions=own,
            variables=task_vars,
        )


@functools.cache
def role_tasks(role: str) -> tuple[Task, ...]:
    """The role's tasks and then its handlers, includes followed."""
    base = collection_dir() / "roles" / role
    main = base / "tasks" / "main.yml"
    tasks = list(_walk(role, main, _load(main) or [], (), {}))
    handlers = base / "handlers" / "main.yml"
    if handlers.is_file():
        tasks += _walk(role, handlers, _load(handlers) or [], (), {})
    return tuple(tasks)


@functools.cache
def role_variables(role: str) -> Mapping[str, Any]:
    """defaults/main.yml under vars/main.yml, as written (templates unrendered)."""
    merged: dict[str, Any] = {}
    for kind in ("defaults", "vars"):
        path = collection_dir() / "roles" / role / kind / "main.yml"
        if path.is_file():
            merged.update(_load(path) or {})
    return merged


@functools.cache
def _filter_plugin() -> Any:
    path = collection_dir() / "plugins" / "filter" / "stale_files.py"
    spec = importlib.util.spec_from_file_location("k8s_provision_stale_files", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stale_files(planned: Any, found: Any) -> Any:
    # The roles' own filter, so the files a task manages are exactly those it would write.
    return _filter_plugin().stale_files(planned, found)


def _zip(left: Any, *others: Any) -> list[tuple[Any, ...]]:
    return list(zip(left, *others, strict=False))


@functools.cache
def _environment() -> NativeEnvironment:
    env = NativeEnvironment(undefined=jinja2.StrictUndefined)
    # The Ansible filters the roles' static variables use.
    env.filters["zip"] = _zip
    env.filters["bool"] = lambda v: (
        v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on")
    )
    env.filters["quote"] = str
    env.filters["regex_replace"] = lambda v, pattern, repl="": re.sub(pattern, repl, str(v))
    env.filters[f"{COLLECTION}.stale_files"] = _stale_files
    env.tests["match"] = lambda v, pattern: re.match(pattern, str(v)) is not None
    return env


@functools.cache
def _compile(text: str) -> tuple[frozenset[str], jinja2.Template] | None:
    """The names a template reads and the template, compiled once per process."""
    env = _environment()
    try:
        names = frozenset(jinja2.meta.find_undeclared_variables(env.parse(text)))
        return names, env.from_string(text)
    except jinja2.TemplateError:
        return None


class Variables:
    """One host's view of some roles' variables: `value(name)` renders a variable, resolving
    the variables it reads first; `evaluate(text)` renders any expression the same way."""

    def __init__(
        self, roles: tuple[str, ...], k8s: Mapping[str, Any], extra: Mapping[str, Any] | None = None
    ) -> None:
        self._raw: dict[str, Any] = {}
        for role in roles:
            self._raw.update(role_variables(role))
        self._raw.update(extra or {})
        self._done: dict[str, Any] = {"k8s": k8s}

    def value(self, name: str) -> Any:
        if name in self._done:
            return self._done[name]
        if name not in self._raw:
            return RUNTIME  # registered by a task or gathered: known only during a run
        self._done[name] = RUNTIME  # a cycle evaluates to RUNTIME instead of recursing forever
        self._done[name] = self.render(self._raw[name])
        return self._done[name]

    def evaluate(self, text: str) -> Any:
        return self.render("{{ " + text + " }}")

    def condition(self, text: str) -> bool | None:
        """The condition's value; None when only a run can tell."""
        value = self.evaluate(text)
        if value is RUNTIME:
            return None
        if isinstance(value, str):
            return value.strip().lower() in ("true", "yes", "1")
        return bool(value)

    def render(self, value: Any) -> Any:
        """A value as written in a task or a vars file: strings rendered, others walked."""
        if isinstance(value, dict):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        if not isinstance(value, str) or "{" not in value:
            return value
        compiled = _compile(value)
        if compiled is None:
            return RUNTIME  # an Ansible filter only variables of a run use (difference, ...)
        names, template = compiled
        context = {n: self.value(n) for n in names}
        if any(v is RUNTIME for v in context.values()):
            return RUNTIME
        try:
            result = template.render(**context)
        except (jinja2.UndefinedError, TypeError, KeyError, AttributeError):
            return RUNTIME  # reads part of a gathered fact or a result (`ansible_facts.x`)
        if isinstance(result, Iterator):
            return list(result)  # selectattr and map give generators; Ansible gives lists
        return result.strip() if isinstance(result, str) else result

    def applies(self, task: Task) -> bool:
        """Whether the task acts on this host once converged: its static conditions hold (a
        condition only a run can evaluate is taken as met)."""
        return all(self.condition(c) is not False for c in task.conditions)

    def with_task(self, task: Task, **values: Any) -> Variables:
        """These variables plus the `vars:` of the includes leading to `task` and `values`
        (a loop's `item`)."""
        view = Variables((), self._done["k8s"])
        view._raw = {**self._raw, **task.variables}
        view._done.update(values)
        return view
