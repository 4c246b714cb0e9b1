"""`k8s-provision kubeconfig`: the admin kubeconfig from the cluster PKI, written 0600, printed
only for -o -, refused for a classic cluster."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import NameOID

from k8s_provision.cli import cli

DATA = Path(__file__).parent / "data"
REFERENCE = DATA.parent.parent.parent / "inventories" / "reference.ini"


@pytest.fixture
def tls_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "tls.ini"
    path.write_text((DATA / "reference-tls.ini").read_text() + f"kube_pki_source={tmp_path}/pki\n")
    return path


def test_writes_the_admin_kubeconfig_0600(tls_inventory: Path, tmp_path: Path) -> None:
    out = tmp_path / "admin.conf"
    result = CliRunner().invoke(cli, ["kubeconfig", str(tls_inventory), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in result.output and "client-key-data" not in result.output
    config = yaml.safe_load(out.read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://192.168.10.1:6443"
    pem = base64.b64decode(config["users"][0]["user"]["client-certificate-data"])
    subject = x509.load_pem_x509_certificate(pem).subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    ca = x509.load_pem_x509_certificate((tmp_path / "pki" / "ca.crt").read_bytes())
    x509.load_pem_x509_certificate(pem).verify_directly_issued_by(ca)


def test_dash_prints_it_and_a_second_run_gives_the_same_file(
    tls_inventory: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    printed = runner.invoke(cli, ["kubeconfig", str(tls_inventory), "-o", "-"])
    assert printed.exit_code == 0
    out = tmp_path / "again.conf"
    runner.invoke(cli, ["kubeconfig", str(tls_inventory), "-o", str(out)])
    assert out.read_text() == printed.output


def test_a_classic_cluster_has_no_admin_kubeconfig(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["kubeconfig", str(REFERENCE), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "k8s_security is classic" in result.output
    assert not (tmp_path / "x").exists()
