"""Version-aware Kubernetes configuration: the flags each template renders exist in the
Kubernetes version the model names (lists per version from each release's sources, in
tests/unit/data/kube_flags/), and the 1.20 layout renders exactly as its golden copy."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from k8s_provision import inventory, render
from k8s_provision.model import KUBE_VERSIONS, Cluster

DATA = Path(__file__).parent / "data"
GOLDEN = Path(__file__).parent / "golden"
UNITS = Path(render.__file__).parent / "lab" / "units"


def known_flags(minor: str) -> dict[str, set[str]]:
    raw = yaml.safe_load((DATA / "kube_flags" / f"{minor}.yml").read_text())
    common = set(raw.pop("global"))
    return {component: set(flags) | common for component, flags in raw.items()}


def unit_inputs() -> dict[str, tuple[list[str], list[str]]]:
    """Per component: the environment files its unit reads and the variables it expands
    (the units are shaped like the CentOS RPM units: same files, same variables)."""
    inputs = {}
    for unit in sorted(UNITS.glob("kube*.service")):
        text = unit.read_text()
        files = re.findall(r"^EnvironmentFile=-?(\S+)$", text, re.M)
        variables = re.findall(r"\$(\w+)", text)
        inputs[unit.stem] = (files, variables)
    return inputs


def environment(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = shlex.split(value)[0] if value.strip('"') else ""
    return values


def unknown_flags(cluster: Cluster, minor: str) -> list[str]:
    """Every rendered flag a component would get that its Kubernetes version does not have."""
    flags = known_flags(minor)
    rendered = render.render_cluster(cluster)
    problems = []
    for host, files in rendered.items():
        for component, (env_files, variables) in unit_inputs().items():
            if not all(path in files for path in env_files):
                continue  # not this host's component
            env: dict[str, str] = {}
            for path in env_files:
                env.update(environment(files[path]))
            for variable in variables:
                for token in env.get(variable, "").split():
                    name = token.removeprefix("--").split("=", 1)[0]
                    if token.startswith("--") and name not in flags[component]:
                        problems.append(f"{host} {component}: --{name} (from ${variable})")
    return problems


CASES = {
    "1.5": DATA.parent.parent.parent / "inventories" / "reference.ini",
    "1.20": DATA / "lab-1.20.ini",
}
# The same layouts with k8s_security tls (the default).
TLS_CASES = {"1.5": DATA / "reference-tls.ini", "1.20": DATA / "lab-1.20-tls.ini"}


@pytest.mark.parametrize("security", ["classic", "tls"])
@pytest.mark.parametrize("minor", KUBE_VERSIONS)
def test_every_rendered_flag_exists_in_that_version(minor: str, security: str) -> None:
    cluster = inventory.load((CASES if security == "classic" else TLS_CASES)[minor])
    assert cluster.settings.kube_version.startswith(minor + ".")
    assert cluster.settings.k8s_security == security
    assert unknown_flags(cluster, minor) == []


@pytest.mark.parametrize("minor", KUBE_VERSIONS)
def test_a_flag_of_another_version_is_caught(minor: str, tmp_path: Path) -> None:
    other = {"1.5": "--enable-admission-plugins=X", "1.20": "--insecure-bind-address=X"}[minor]
    path = tmp_path / "inv.ini"
    path.write_text(CASES[minor].read_text() + f"\nkube_apiserver_extra_args={other}\n")
    problems = unknown_flags(inventory.load(path), minor)
    assert problems == [f"master kube-apiserver: {other.split('=')[0]} (from $KUBE_API_ARGS)"]


def test_flags_that_changed_follow_the_version() -> None:
    old = render.render_cluster(inventory.load(CASES["1.5"]))
    new = render.render_cluster(inventory.load(CASES["1.20"]))
    assert "--admission-control=" in old["master"]["/etc/kubernetes/apiserver"]
    assert "--enable-admission-plugins=" in new["master"]["/etc/kubernetes/apiserver"]
    assert "--api-servers=http://" in old["node1"]["/etc/kubernetes/kubelet"]
    assert (
        "--kubeconfig=/etc/kubernetes/pki/kubelet.kubeconfig"
        in new["node1"]["/etc/kubernetes/kubelet"]
    )
    assert "--insecure-bind-address=" in old["master"]["/etc/kubernetes/apiserver"]
    assert '--secure-port=6443"' in new["master"]["/etc/kubernetes/apiserver"]
    assert (
        'KUBE_MASTER="--master=https://192.168.10.1:6443"' in new["node1"]["/etc/kubernetes/config"]
    )


@pytest.mark.parametrize(
    ("source", "copy"),
    [(CASES["1.20"], "lab-1.20"), (TLS_CASES["1.20"], "lab-1.20-tls")],
)
def test_lab_120_layout_renders_as_its_golden_copy(tmp_path: Path, source: Path, copy: str) -> None:
    render.write_rendered(render.render_cluster(inventory.load(source)), tmp_path)
    golden = GOLDEN / copy
    rendered = {
        str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
    }
    expected = {
        str(p.relative_to(golden)): p.read_bytes() for p in golden.rglob("*") if p.is_file()
    }
    assert rendered == expected
