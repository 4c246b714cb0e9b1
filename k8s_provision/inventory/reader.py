"""Reading an inventory with ansible-core's own code: InventoryManager, VariableManager,
DataLoader and vault, so what ansible-inventory accepts is accepted with the same meaning."""

from __future__ import annotations

import contextlib
import inspect
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k8s_provision.errors import InventoryError
from k8s_provision.inventory.problems import few
from k8s_provision.inventory.source import SourceFiles

_YAML_SUFFIXES = (".yml", ".yaml", ".json")
_ORIGIN_RE = re.compile(r"^Origin: (\S+)|appears to be in '([^']+)'", re.MULTILINE)
_HOST_LINE_RE = re.compile(r"^\s*[#;]\s*[A-Za-z0-9][A-Za-z0-9._\[\]:-]*(\s+\w+=\S*)*\s*(#.*)?$")


# Variables ansible-core adds to every host itself; they are not the inventory's.
_MAGIC_VARIABLES = frozenset(
    {
        "ansible_check_mode",
        "ansible_config_file",
        "ansible_diff_mode",
        "ansible_facts",
        "ansible_forks",
        "ansible_inventory_sources",
        "ansible_playbook_python",
        "ansible_run_tags",
        "ansible_skip_tags",
        "ansible_verbosity",
        "ansible_version",
        "group_names",
        "groups",
        "inventory_dir",
        "inventory_file",
        "inventory_hostname",
        "inventory_hostname_short",
        "omit",
        "playbook_dir",
        "role_names",
    }
)


@dataclass(frozen=True)
class VaultOptions:
    """How the vault password is given, the ways ansible-playbook takes it. The
    ANSIBLE_VAULT_PASSWORD_FILE environment variable (or ansible.cfg) is read by ansible-core
    itself."""

    password_files: tuple[str, ...] = ()
    # Typed at --ask-vault-pass's prompt; kept out of repr so it never lands in a log.
    password: str | None = field(default=None, repr=False)


def first_line(err: BaseException) -> str:
    """ansible-core's multi-line error as one line, with the file (and line) it points at
    (2.19 says "Origin: FILE:LINE:COL", older releases "appears to be in 'FILE': line N")."""
    text = getattr(err, "message", None) or str(err)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    first = lines[0] if lines else type(err).__name__
    origin = _ORIGIN_RE.search(str(err))
    where = origin.group(1) or origin.group(2) if origin else None
    cause: BaseException | None = err
    while where is None and cause is not None:
        # 2.19 keeps the file position on a chained exception's `obj`; older releases keep
        # the offending data there, which may be a whole vault ciphertext: only a short,
        # single-line position is shown.
        obj = getattr(cause, "obj", None)
        text = str(obj) if obj else ""
        where = text if text and len(text) < 300 and "\n" not in text else None
        cause = cause.__cause__ or cause.__context__
    line = f"{first} (in {where})" if where else first
    # Never echo vault ciphertext or a decrypted secret it came with.
    return line.split("$ANSIBLE_VAULT", 1)[0].rstrip(" ('\"b")


@contextlib.contextmanager
def _quiet_ansible() -> Iterator[None]:
    """ansible-core prints warnings (e.g. a host and a group sharing a name) on stderr; the
    loader reports problems itself."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def _parse_once() -> Iterator[None]:
    """Two settings that cost time and change nothing for an inventory, for this read only:
    the `auto` plugin loads every YAML file just to look for a `plugin:` key, then `yaml` loads
    it again, so `auto` goes after `yaml` and `ini` (a plugin config still reaches it: `yaml`
    refuses those); and with no facts gathered, injecting facts as variables only costs a
    plugin directory scan per host."""
    from ansible import constants as C

    enabled, inject = C.INVENTORY_ENABLED, C.INJECT_FACTS_AS_VARS
    first = [name for name in enabled if name not in ("auto",)]
    C.INVENTORY_ENABLED = first + [name for name in enabled if name == "auto"]
    C.INJECT_FACTS_AS_VARS = False
    try:
        yield
    finally:
        C.INVENTORY_ENABLED, C.INJECT_FACTS_AS_VARS = enabled, inject


def _parse_error(path: Path, loader: Any) -> InventoryError:
    """Why no plugin could parse `path`: the error of the plugin its name implies first."""
    from ansible.inventory.data import InventoryData
    from ansible.plugins.loader import inventory_loader

    order = ["yaml", "ini"] if path.suffix in _YAML_SUFFIXES else ["ini", "yaml"]
    errors: list[str] = []
    for name in order:
        plugin = inventory_loader.get(name)
        try:
            plugin.parse(InventoryData(), loader, str(path.resolve()), cache=False)
        except Exception as err:  # ansible raises several types; all mean "not parsable"
            errors.append(first_line(err))
            continue
        return InventoryError(f"{path}: ansible-core did not accept it as an inventory")
    kinds = " or ".join(n.upper() for n in order[:1])
    return InventoryError(f"{path}: not a valid {kinds} inventory ({_with_line(path, errors[0])})")


_CULPRIT_RES = (re.compile(r'for "([^"]+)" group'), re.compile(r"got: (.+?)(?: \(in |$)"))


def _with_line(path: Path, message: str) -> str:
    """Add FILE:LINE when ansible-core names the culprit (a group, a line's text) but not
    where it is, as for a YAML structure error or a malformed INI line."""
    if re.search(r":\d+(:\d+)?\)", message):
        return message
    for culprit_re in _CULPRIT_RES:
        found = culprit_re.search(message)
        if not found:
            continue
        culprit = found.group(1).strip()
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, 1):
            if line.strip() == culprit or line.strip().startswith(f"{culprit}:"):
                return f"{message.split(' (in ', maxsplit=1)[0]} (at {path}:{number})"
    return message


def _why_no_hosts(path: Path) -> str:
    if path.is_dir():
        from ansible import constants as C

        ignored_exts = tuple(str(ext) for ext in C.INVENTORY_IGNORE_EXTS)
        ignored = sorted(p.name for p in path.iterdir() if p.name.endswith(ignored_exts))
        why = (
            f" (this ansible-core skips files ending in {', '.join(ignored_exts)} inside an"
            f" inventory directory: {few(ignored)})"
            if ignored
            else ""
        )
        return f"no host in any inventory file there{why}"
    text = path.read_text(encoding="utf-8", errors="replace")
    if any(_HOST_LINE_RE.match(line) for line in text.splitlines()):
        return "no hosts: every host line is commented out"
    return "no hosts: the inventory defines groups or variables but no host"


def _setup_vault(loader: Any, vault: VaultOptions, files: SourceFiles) -> None:
    if not files.encrypted:
        return
    from ansible import constants as C

    # Imported only for a vaulted inventory: importing ansible.cli exits the process when its
    # stdin is non-blocking (a check meant for Ansible's own commands), which a controller's
    # stdin may well be (a pipe shared with another program, a CI runner).
    from ansible.cli import CLI
    from ansible.errors import AnsibleError
    from ansible.parsing.vault import VaultSecret

    given = vault.password_files or vault.password or C.DEFAULT_VAULT_PASSWORD_FILE
    if not given and not C.DEFAULT_VAULT_IDENTITY_LIST:
        raise InventoryError(
            f"{files.encrypted[0]}: encrypted with ansible-vault and no vault password was given"
            " (use --vault-password-file, --ask-vault-pass or ANSIBLE_VAULT_PASSWORD_FILE)"
        )
    try:
        # 2.19 installs the secrets process-wide unless told not to (done below, repeatably);
        # 2.16 to 2.18 have no such parameter.
        extra = (
            {"initialize_context": False}
            if "initialize_context" in inspect.signature(CLI.setup_vault_secrets).parameters
            else {}
        )
        secrets = CLI.setup_vault_secrets(
            loader,
            vault_ids=list(C.DEFAULT_VAULT_IDENTITY_LIST),
            vault_password_files=list(vault.password_files),
            ask_vault_pass=False,
            auto_prompt=False,
            **extra,
        )
    except AnsibleError as err:
        raise InventoryError(f"vault password: {first_line(err)}") from None
    if vault.password is not None:
        secrets.append((C.DEFAULT_VAULT_IDENTITY, VaultSecret(vault.password.encode())))
        loader.set_vault_secrets(secrets)
    with contextlib.suppress(ImportError):
        from ansible.parsing.vault import VaultSecretsContext

        # ansible-core 2.19 decrypts !vault values lazily through this process-wide context;
        # its initialize() refuses a second call, and one process (the tests, the benchmark)
        # may read several inventories.
        VaultSecretsContext._current = VaultSecretsContext(secrets)


class ResolvedVars(Mapping[str, Any]):
    """A host's variables with Jinja expressions resolved on access, as Ansible would. An
    expression that cannot resolve names the host and the variable."""

    def __init__(self, where: str, variables: Mapping[str, Any], templar: Any) -> None:
        self._where = where
        self._vars = variables
        self._templar = templar

    def __getitem__(self, key: str) -> Any:
        value = self._vars[key]
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            try:
                return self._templar.template(value)
            except Exception as err:  # any Jinja or Ansible error means "cannot resolve"
                raise InventoryError(
                    f"{self._where}: {key}: cannot resolve {value[:80]!r}: {first_line(err)}"
                ) from None
        return value

    def get(self, key: str, default: Any = None) -> Any:
        # Mapping.get goes through a KeyError for every variable a host does not set: with 29
        # settings and 1000 hosts that is most of the lookups.
        return self[key] if key in self._vars else default

    def __contains__(self, key: object) -> bool:
        return key in self._vars

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)


def read(
    path: Path, vault: VaultOptions, files: SourceFiles
) -> tuple[dict[str, list[str]], dict[str, Mapping[str, Any]]]:
    """Groups (name -> hosts) and each host's variables, parsing the inventory once."""
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.utils.path import unfrackpath
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    with _quiet_ansible(), _parse_once():
        _setup_vault(loader, vault, files)
        try:
            manager = InventoryManager(loader=loader, sources=[str(path)])
        except AnsibleError as err:
            raise InventoryError(f"{path}: {first_line(err)}") from None
        # ansible-core records each source it parsed (as an absolute, normalised path); no
        # public API says whether a plugin accepted the file.
        processed = manager._inventory.processed_sources
        parsed = unfrackpath(str(path), follow=False) in processed
        if path.is_file() and not parsed:
            raise _parse_error(path, loader)
        if not manager.get_hosts():
            raise InventoryError(f"{path}: {_why_no_hosts(path)}")
        variables = VariableManager(loader=loader, inventory=manager)
        groups = {
            name: [str(h) for h in hosts] for name, hosts in manager.get_groups_dict().items()
        }
        hostvars: dict[str, Mapping[str, Any]] = {}
        for host in manager.get_hosts():
            try:
                # Through the VariableManager, not Host.vars: when a host and a group share a
                # name, ansible-core files the host's INI variables under the group.
                merged = variables.get_vars(host=host, include_hostvars=False)
            except AnsibleError as err:
                if "Decryption failed" in str(err) and files.encrypted:
                    raise InventoryError(
                        f"{few([str(f) for f in files.encrypted])}: cannot decrypt with the"
                        " vault password given"
                    ) from None
                raise InventoryError(f"{path}: host {host.name}: {first_line(err)}") from None
            own = {k: v for k, v in merged.items() if k not in _MAGIC_VARIABLES}
            hostvars[host.name] = ResolvedVars(
                f"{path}: host {host.name}", own, Templar(loader=loader, variables=merged)
            )
    return groups, hostvars
