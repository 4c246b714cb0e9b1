"""Each operation as its ordered list of phases."""

from __future__ import annotations

from collections.abc import Sequence

from k8s_provision.phases import steps
from k8s_provision.phases.manager import Context, Phase, run_phases


def up_phases() -> Sequence[Phase]:
    return [
        steps.TakeLock("up"),
        steps.FastPath(),
        steps.Preflight(),
        steps.Converge(),
        steps.Verify(),
    ]


def plan_phases() -> Sequence[Phase]:
    """`up` itself, dry: the lock, the fast path and, when it finds differences, a check-mode
    converge; nothing changes."""
    return [steps.TakeLock("plan"), steps.FastPath(with_verify=False), steps.Converge()]


def add_node_phases() -> Sequence[Phase]:
    return [
        steps.TakeLock("add-node"),
        steps.CheckMemberAdd(),
        steps.Preflight(named=True),
        steps.Converge(),
        steps.Verify(),
    ]


def remove_node_phases() -> Sequence[Phase]:
    return [
        steps.TakeLock("remove-node"),
        steps.CheckRemove(),
        steps.DeleteKubeNodes(),
        steps.RemoveMembers(),
        steps.ResetHosts(named=True),
    ]


def reset_phases() -> Sequence[Phase]:
    return [steps.TakeLock("reset"), steps.ResetHosts()]


def up(ctx: Context) -> Context:
    return run_phases(up_phases(), ctx)


def plan(ctx: Context) -> Context:
    return run_phases(plan_phases(), ctx, dry=True)


def add_node(ctx: Context) -> Context:
    return run_phases(add_node_phases(), ctx)


def remove_node(ctx: Context) -> Context:
    return run_phases(remove_node_phases(), ctx)


def reset(ctx: Context) -> Context:
    return run_phases(reset_phases(), ctx)
