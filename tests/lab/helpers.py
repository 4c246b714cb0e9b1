"""The k8s-provision command as lab tests run it (the installed entry point, no terminal, a
failure explained by the ends of its output), and a module's own provisioned lab."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from k8s_provision import lab as lab_api

CLI = str(Path(sys.executable).parent / "k8s-provision")


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout[-5000:]}\n{result.stderr[-3000:]}"


@contextlib.contextmanager
def provisioned_lab(name: str, *, security: str) -> Iterator[lab_api.LabState]:
    """A module's own 3-host lab (etcd only) named `name`, provisioned by `up`, and removed
    afterwards (leftovers of a killed session with that name first)."""
    config = lab_api.make_config(name)
    lab_api.down(config=config)
    try:
        state = lab_api.up(nodes=2, config=config, kubernetes=False, security=security)
        result = cli("up", str(state.inventory))
        assert result.returncode == 0, explain(result)
        yield state
    finally:
        lab_api.down(config=config)
