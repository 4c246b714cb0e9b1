"""The support bundle: a tar.gz with a directory per host (command outputs, journals, files,
drift diffs), manifest.json and findings.txt, everything redacted, written atomically and
readable by its owner only."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from k8s_provision import __version__
from k8s_provision.diagnose.collection import Collected
from k8s_provision.diagnose.drift import Drift
from k8s_provision.diagnose.evaluation import Evaluation
from k8s_provision.diagnose.match import findings_text
from k8s_provision.diagnose.redact import redact
from k8s_provision.errors import UsageError
from k8s_provision.files import atomic_write
from k8s_provision.model import Cluster
from k8s_provision.probes import PROBE_TIMEOUT, TIMED_OUT, Output
from k8s_provision.probes.systemd import JOURNAL_LINES, split_status


def default_bundle_path(now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path(f"k8s-provision-diagnose-{stamp}.tar.gz")


def _command_file(command: str, output: Output) -> str:
    parts = [f"$ {command}", f"# exit {output.exit_code}", output.stdout.rstrip("\n")]
    if output.stderr.strip():
        parts += ["--- stderr ---", output.stderr.rstrip("\n")]
    return "\n".join(parts) + "\n"


def _collection_error(probe: str, output: Output) -> str | None:
    """Why a command gave nothing useful; None when its exit code is itself the answer
    (systemctl status of a stopped unit exits 3, getenforce without SELinux 127 ...)."""
    if output.exit_code == TIMED_OUT:
        return f"{probe}: timed out after {PROBE_TIMEOUT} s"
    if output.exit_code in (126, 127) and probe not in (
        "getenforce",
        "firewalld-state",
        "firewalld-list",
    ):
        last = (output.stderr.strip().splitlines() or ["command not found"])[-1]
        return f"{probe}: not available on this host ({last})"
    if probe.startswith("file:") and output.exit_code != 0 and "No such file" not in output.stderr:
        return f"{probe}: {output.stderr.strip() or f'exit {output.exit_code}'}"
    return None


def _host_members(got: Collected, drifts: Sequence[Drift]) -> tuple[dict[str, str], list[str]]:
    """{path in the host's directory: content} and the collection errors of one host."""
    files: dict[str, str] = {}
    errors: list[str] = []
    if not got.reachable:
        files["error.txt"] = (got.facts.error or "not collected") + "\n"
        errors.append(got.facts.error or "not collected")
    for name, output in sorted(got.facts.outputs.items()):
        kind, _, subject = name.partition(":")
        if kind == "file":
            if output.exit_code == 0:
                files["files" + subject] = output.stdout
        elif kind == "journal":
            files[f"journal/{subject}.log"] = output.stdout
        elif kind == "status" and (shares := split_status(output)):
            # One systemctl for all units; a file per unit, each with the command and its exit.
            for unit, share in shares.items():
                files[f"systemctl-status/{unit}.txt"] = _command_file(got.commands[name], share)
        else:
            command = got.commands.get(name, name)
            files[f"commands/{name}.txt"] = _command_file(command, output)
        problem = _collection_error(name, output)
        if problem:
            errors.append(problem)
    for d in drifts:
        if d.host == got.host and d.diff:
            files[f"drift{d.path}.diff"] = d.diff
    return {path: redact(text) for path, text in files.items()}, errors


def manifest(
    cluster: Cluster,
    collected: Mapping[str, Collected],
    evaluation: Evaluation,
    members: Mapping[str, Sequence[str]],
    errors: Mapping[str, Sequence[str]],
    *,
    inventory: str,
    since: str,
    created: datetime,
) -> dict[str, Any]:
    hosts: dict[str, Any] = {}
    for host in cluster.hosts:
        got = collected.get(host.name)
        hosts[host.name] = {
            "address": host.address,
            "ip": host.ip,
            "roles": sorted(host.roles),
            "reachable": bool(got and got.reachable),
            "error": got.facts.error if got else "not collected",
            "clock_offset_seconds": round(got.clock_offset, 3)
            if got and got.clock_offset is not None
            else None,
            "collection_seconds": round(got.elapsed, 2) if got else None,
            "collected": list(members.get(host.name, ())),
            "errors": list(errors.get(host.name, ())),
        }
    return {
        "tool": "k8s-provision",
        "version": __version__,
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inventory": inventory,
        "since": since,
        "journal_lines_per_unit": JOURNAL_LINES,
        "ok": evaluation.ok,
        "hosts": hosts,
        "errors": [f"{host}: {e}" for host, errs in errors.items() for e in errs],
        "findings": [f.as_dict() for f in evaluation.findings],
    }


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float, *, directory: bool) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = int(mtime)
    info.uid = info.gid = 0
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o700
        tar.addfile(info)
        return
    info.size, info.mode = len(data), 0o600
    tar.addfile(info, io.BytesIO(data))


def write_bundle(path: Path, root: str, files: Mapping[str, str], *, mtime: float) -> None:
    """Write `files` ({relative path: text}) under `root/` into the tar.gz at `path`,
    atomically (a temporary file beside it, renamed when complete) and readable by its owner
    only: it may hold sensitive data."""
    path = path.resolve()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for directory in _directories(root, files):
            _add(tar, directory, b"", mtime, directory=True)
        for rel in sorted(files):
            _add(tar, f"{root}/{rel}", files[rel].encode(), mtime, directory=False)
    try:
        atomic_write(path, buffer.getvalue(), mode=0o600)
    except OSError as err:
        raise UsageError(f"{path}: cannot write the bundle there: {err.strerror}") from None


def _redacted(value: Any) -> Any:
    """`value` with every string in it redacted. Each string on its own: redacting the JSON
    text could cut through an escaped quote and break the document."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def _directories(root: str, files: Iterable[str]) -> list[str]:
    """Every directory the files sit in, parents first."""
    found = {root}
    for rel in files:
        parts = rel.split("/")[:-1]
        found |= {"/".join([root, *parts[:i]]) for i in range(1, len(parts) + 1)}
    return sorted(found)


def check_output_path(path: Path) -> None:
    """Refuse early (before any SSH) a bundle path that cannot be written."""
    parent = path.resolve().parent
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give a file name for the bundle")
    if not parent.is_dir():
        raise UsageError(f"{parent}: no such directory for the bundle")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{parent}: not writable for the bundle")


def bundle_files(
    cluster: Cluster,
    collected: Mapping[str, Collected],
    evaluation: Evaluation,
    *,
    root: str,
    inventory: str,
    since: str,
    created: datetime,
) -> dict[str, str]:
    """{path under root: content}: a directory per host, manifest.json and findings.txt."""
    files: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    errors: dict[str, list[str]] = {}
    for host in cluster.hosts:
        host_files, host_errors = _host_members(collected[host.name], evaluation.drifts)
        for rel, text in host_files.items():
            files[f"{host.name}/{rel}"] = text
        members[host.name] = sorted(f"{root}/{host.name}/{rel}" for rel in host_files)
        if host_errors:
            errors[host.name] = host_errors
    document = manifest(
        cluster,
        collected,
        evaluation,
        members,
        errors,
        inventory=inventory,
        since=since,
        created=created,
    )
    files["manifest.json"] = json.dumps(_redacted(document), indent=2) + "\n"
    files["findings.txt"] = redact(findings_text(evaluation.findings))
    return files
