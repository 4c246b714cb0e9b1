"""Options shared by the verbs: the inventory and how to read it, and running playbooks."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from k8s_provision import inventory, ssh, ssh_args
from k8s_provision.errors import UsageError
from k8s_provision.model import Cluster
from k8s_provision.phases.manager import Context
from k8s_provision.progress import PhaseOutput
from k8s_provision.runner import RunOptions, default_log_dir
from k8s_provision.transport import SshTransport

F = TypeVar("F", bound=Callable[..., Any])


def inventory_argument(func: F) -> F:
    return click.argument("inventory_path", metavar="INVENTORY", type=click.Path(path_type=Path))(
        func
    )


_READ_OPTIONS = "k8s_provision.inventory_read_options"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    ctx.meta.setdefault(_READ_OPTIONS, {})[param.name] = value


def inventory_options(func: F) -> F:
    """--vault-password-file, --ask-vault-pass, --strict and --accept-new-host-keys, for
    every verb that reads an inventory; `load_inventory` applies them. ANSIBLE_VAULT_PASSWORD_FILE
    and ansible.cfg's vault_password_file work too, read by ansible-core itself."""
    options = [
        click.option(
            "--vault-password-file",
            "vault_password_files",
            multiple=True,
            type=click.Path(dir_okay=False),
            expose_value=False,
            callback=_remember,
            help="File holding the ansible-vault password (or an executable printing it).",
        ),
        click.option(
            "--ask-vault-pass",
            "ask_vault_pass",
            is_flag=True,
            expose_value=False,
            callback=_remember,
            help="Prompt for the ansible-vault password.",
        ),
        click.option(
            "--strict",
            "strict",
            is_flag=True,
            expose_value=False,
            callback=_remember,
            help="Treat a likely typo of a k8s-provision variable as an error, not a warning.",
        ),
        click.option(
            "--accept-new-host-keys",
            "accept_new_host_keys",
            metavar="FILE",
            type=click.Path(dir_okay=False, path_type=Path),
            expose_value=False,
            callback=_remember,
            help="Trust a host whose SSH key is not known yet, once, writing its key into FILE"
            " (a known_hosts file); a changed key is still refused. Without it an unknown key,"
            " or an inventory that turns checking off, is refused.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def load_inventory(path: Path) -> Cluster:
    """`inventory.load` with the options `inventory_options` collected; warnings on stderr."""
    given = click.get_current_context().meta.get(_READ_OPTIONS, {})
    # Before the inventory is read: its validation and every SSH and Ansible run follow it.
    ssh_args.set_accept_new_file(given.get("accept_new_host_keys"))
    password = None
    if given.get("ask_vault_pass"):
        if not sys.stdin.isatty():
            raise UsageError(
                "--ask-vault-pass needs a terminal; use --vault-password-file or"
                " ANSIBLE_VAULT_PASSWORD_FILE instead"
            )
        password = str(click.prompt("Vault password", hide_input=True))
    vault = inventory.VaultOptions(
        password_files=tuple(given.get("vault_password_files", ())), password=password
    )
    return inventory.load(
        path,
        vault=vault,
        strict=bool(given.get("strict")),
        warn=lambda line: click.echo(f"warning: {line}", err=True),
    )


def limit_option(func: F) -> F:
    return click.option(
        "--limit",
        metavar="PATTERN",
        help="Only these hosts or groups (an Ansible host pattern, e.g. node3 or nodes).",
    )(func)


def playbook_options(func: F) -> F:
    """--forks, -v, --log-dir, --lock-timeout and --ask-become-pass."""
    options = [
        click.option(
            "--forks", type=click.IntRange(1, 200), help="Hosts Ansible works on at once."
        ),
        click.option(
            "-v",
            "--verbose",
            "verbosity",
            count=True,
            help="More Ansible output in the log (-vvv).",
        ),
        click.option(
            "--log-dir",
            type=click.Path(path_type=Path, file_okay=False),
            default=default_log_dir,
            show_default="~/.local/state/k8s-provision/logs",
            help="Where the full Ansible output is saved.",
        ),
        click.option(
            "--lock-timeout",
            type=click.FloatRange(0),
            default=0.0,
            show_default=True,
            metavar="SECONDS",
            help="Wait this long for another operation on the cluster to finish (its cluster"
            " lock on the first master) instead of exiting 1 at once.",
        ),
        click.option(
            "--ask-become-pass",
            is_flag=True,
            help=f"Prompt for the sudo password (or set {ssh.BECOME_PASSWORD_ENV}).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def run_options(
    forks: int | None, verbosity: int, log_dir: Path, ask_become_pass: bool
) -> RunOptions:
    """The RunOptions `playbook_options` collected."""
    return RunOptions(
        forks=forks,
        verbosity=verbosity,
        log_dir=log_dir,
        become_password=become_password(ask_become_pass),
    )


def become_password(ask: bool) -> str | None:
    """From the prompt or the environment; never from the command line, never printed."""
    if ask:
        if not sys.stdin.isatty():
            raise UsageError(
                f"--ask-become-pass needs a terminal; set {ssh.BECOME_PASSWORD_ENV} instead"
            )
        password: str = click.prompt("sudo password", hide_input=True)
        ssh.set_become_password(password)
        return password
    return ssh.become_password()


def confirm_or_refuse(question: str, yes: bool) -> None:
    """Ask on a terminal; without one, refuse (exit 2) unless --yes was given."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} Refusing without a terminal to ask on; pass --yes to confirm")
    if not click.confirm(question, default=False):
        raise UsageError("not confirmed; nothing was changed")


@contextmanager
def phase_context(
    cluster: Cluster, inventory_path: Path, run: RunOptions, console: Console, **fields: Any
) -> Iterator[Context]:
    """The context an operation's phases share, over SSH, printing on `console`."""
    transport = SshTransport()
    try:
        yield Context(cluster, inventory_path, run, transport, PhaseOutput(console), **fields)
    finally:
        transport.close()
