"""Command-line entry point. Thin: each verb lives in `k8s_provision/commands/<verb>.py`, parses
its options, calls one domain function and prints. Errors become messages and exit codes here,
in one place."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

import click

from k8s_provision import __version__
from k8s_provision.commands import (
    certs,
    diagnose,
    kubeconfig,
    lab,
    nodes,
    plan,
    render,
    reset,
    up,
    verify,
)
from k8s_provision.errors import ProvisionError, Terminated


class _Cli(click.Group):
    """Turns the project's errors into one-line messages and exit codes (tracebacks only with
    --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProvisionError as err:
            if ctx.params.get("debug"):
                raise
            click.echo(f"error: {err.message}", err=True)
            for line in err.details:
                click.echo(f"  {line}", err=True)
            ctx.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(
    cls=_Cli,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name="k8s-provision")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
def cli(debug: bool) -> None:
    """Stand up a Kubernetes cluster (etcd, flannel, master, nodes) from an Ansible inventory
    and prove it healthy.

    \b
    Typical use:
      k8s-provision render inventory.ini       # see every config file each host gets
      k8s-provision up inventory.ini           # validate, apply over SSH, verify
      k8s-provision up --lab                   # the same on a local systemd-nspawn lab

    Exit codes: 0 success, 1 the operation failed (a host or check), 2 usage or inventory error.
    """


cli.add_command(up.command)
cli.add_command(render.command)
cli.add_command(plan.command)
cli.add_command(reset.command)
cli.add_command(nodes.add_node)
cli.add_command(nodes.remove_node)
cli.add_command(verify.command)
cli.add_command(diagnose.command)
cli.add_command(kubeconfig.command)
cli.add_command(certs.group)
cli.add_command(lab.group)


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP become an exception like Ctrl-C does, so every `finally` runs: the
    playbook's process group is stopped and the cluster lock released before the exit."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_terminated)


def main() -> None:
    install_signal_handlers()
    cli(prog_name="k8s-provision")
