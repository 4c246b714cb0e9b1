"""Fixtures for tests that boot the systemd-nspawn lab (`@pytest.mark.lab`).

`lab` is one running lab (master, node1, node2) shared by the whole session and torn down at
its end, even when tests fail. Without root or the lab's tools it skips with the exact reason;
with K8SP_LAB_REQUIRED=1 (CI) it fails instead, so a broken CI machine cannot pass silently.

Each session takes a lab name of its own (k8sptest, k8sptest2, ...) under a lock held for the
session, so two engineers' test runs on one machine never stop each other's lab; leftovers of a
killed session under the same name are removed before use. While the session runs,
K8S_PROVISION_LAB_NAME names the test lab, so `k8s_provision.lab` functions called without a
config, and CLI subprocesses, act on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from k8s_provision import inventory
from k8s_provision import lab as lab_api
from k8s_provision.model import Cluster
from tests.lab.helpers import cli, explain, provisioned_lab
from tests.lab.hosts import run_site

REPO = Path(__file__).resolve().parent.parent.parent

# K8SP_TEST_LAB_PREFIX gives a test run lab names of its own (k8sptls, k8sptls2, ...), so runs
# from two worktrees on one machine never share or stop each other's labs.
TEST_LAB_PREFIX = os.environ.get("K8SP_TEST_LAB_PREFIX", "k8sptest")
_MAX_SESSIONS = 4


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on a lab with the Kubernetes binaries run last: on a cold machine (CI) the build
    of the binaries runs beside the other tests, on the CPU their waits leave idle."""
    items.sort(key=lambda item: item.get_closest_marker("kubernetes") is not None)


def _require_lab_environment() -> None:
    problems = lab_api.missing_requirements()
    if not problems:
        return
    reason = "lab tests need: " + "; ".join(problems)
    if os.environ.get("K8SP_LAB_REQUIRED") == "1":
        pytest.fail(f"K8SP_LAB_REQUIRED=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def _session_lab_name() -> Iterator[str]:
    lab_api.LOCK_DIR.mkdir(parents=True, exist_ok=True)
    for index in range(1, _MAX_SESSIONS + 1):
        name = TEST_LAB_PREFIX + ("" if index == 1 else str(index))
        handle: IO[str] = (lab_api.LOCK_DIR / f"test-session-{name}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield name
        finally:
            handle.close()
        return
    pytest.fail(f"{_MAX_SESSIONS} lab test sessions are already running on this machine")


@pytest.fixture(scope="session")
def lab_name() -> Iterator[str]:
    """This session's lab name; also exported as K8S_PROVISION_LAB_NAME while it runs."""
    _require_lab_environment()
    with _session_lab_name() as name:
        env_vars = ("K8S_PROVISION_LAB_NAME", "K8S_PROVISION_LAB_DIR")
        saved = {var: os.environ.get(var) for var in env_vars}
        os.environ["K8S_PROVISION_LAB_NAME"] = name
        os.environ.pop("K8S_PROVISION_LAB_DIR", None)
        try:
            yield name
        finally:
            for var, value in saved.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value


@pytest.fixture(scope="session")
def lab(lab_name: str) -> Iterator[lab_api.LabState]:
    """A running lab with 2 nodes for the whole session, without the Kubernetes binaries (the
    classic layout the playbooks, verify and diagnose tests expect: k8s_security=classic,
    plaintext etcd, set explicitly since a new lab defaults to tls; test_kubernetes.py boots
    a lab of its own with them, the TLS modules share `tls_lab`). Do not stop it or change its
    size in a test; use `spare_lab_config` for that."""
    config = lab_api.make_config(lab_name)
    lab_api.down(config=config)  # leftovers of a killed session with this name
    try:
        yield lab_api.up(nodes=2, config=config, kubernetes=False, security="classic")
    finally:
        lab_api.down(config=config)


@pytest.fixture
def spare_lab_config(lab_name: str) -> Iterator[lab_api.LabConfig]:
    """A second lab name for tests that grow, power-cycle or stop a lab; always torn down."""
    config = lab_api.make_config(lab_name + "x")
    lab_api.down(config=config)
    try:
        yield config
    finally:
        lab_api.down(config=config)


@pytest.fixture(scope="module")
def converged_lab(lab: lab_api.LabState) -> lab_api.LabState:
    """The session lab after one run of site.yml (per test module: modules break and heal it)."""
    run_site(lab)
    return lab


@pytest.fixture(scope="module")
def cluster(converged_lab: lab_api.LabState) -> Cluster:
    return inventory.load(converged_lab.inventory)


@pytest.fixture(scope="session")
def provisioned_tls_lab(lab_name: str) -> Iterator[lab_api.LabState]:
    """A second session lab, with k8s_security=tls (etcd only), provisioned by `up` once for
    every TLS module: provisioning costs more than all but the longest tests."""
    with provisioned_lab(lab_name + "tls", security="tls") as state:
        yield state


@pytest.fixture(scope="module")
def tls_lab(provisioned_tls_lab: lab_api.LabState) -> lab_api.LabState:
    """The TLS session lab after one more `up` per test module (quick when nothing drifted):
    modules change it (renew, remove and add members, break and heal certificates)."""
    result = cli("up", str(provisioned_tls_lab.inventory))
    assert result.returncode == 0, explain(result)
    return provisioned_tls_lab
