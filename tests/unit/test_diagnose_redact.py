"""diagnose's redaction: secrets are recognised by their shape, never by their value."""

from __future__ import annotations

import pytest

from k8s_provision.diagnose.redact import redact

KEY_BODY = "MIIEowIBAAKCAQEA1x\nZ2Vu+ZXJh/dGVk=="


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('ETCD_INITIAL_CLUSTER_TOKEN="abcd1234"', 'ETCD_INITIAL_CLUSTER_TOKEN="<redacted>"'),
        ("--token=abcd1234 --v=2", "--token=<redacted> --v=2"),
        ('{"password":"hunter22","user":"x"}', '{"password":"<redacted>","user":"x"}'),
        ("client_secret: s3cr3t!", "client_secret: <redacted>"),
        ("api_key='k-123'", "api_key='<redacted>'"),
        ('"initial-cluster-token":"k8s-etcd-cluster"', '"initial-cluster-token":"<redacted>"'),
        # *PASS*=, *TOKEN*=, *SECRET*= values, whatever the rest of the name.
        ("DB_PASS=weak MY_PASSPHRASE=x", "DB_PASS=<redacted> MY_PASSPHRASE=<redacted>"),
        (
            "GITHUB_TOKEN_RO=ghp_x APP_SECRET_2=y",
            "GITHUB_TOKEN_RO=<redacted> APP_SECRET_2=<redacted>",
        ),
        # The inventory's own secrets, in INI and YAML.
        (
            "node1 ansible_password=pw1 ansible_become_password='pw 2'",
            "node1 ansible_password=<redacted> ansible_become_password='<redacted>'",
        ),
        ("ansible_ssh_pass: pw3", "ansible_ssh_pass: <redacted>"),
        (
            "ansible_become_password: !vault |\n"
            "  $ANSIBLE_VAULT;1.1;AES256\n  6231\n  3a3b\nnext: 1",
            "ansible_become_password: !vault |\n  <redacted vault>\nnext: 1",
        ),
        # URL userinfo: the password, not the user.
        (
            "proxy http://ops:hunter22@10.0.0.9:3128 down",
            "proxy http://ops:<redacted>@10.0.0.9:3128 down",
        ),
        ("etcd at http://192.168.10.2:2379/health", "etcd at http://192.168.10.2:2379/health"),
        # Command-line passwords and curl's credentials.
        ("mysql --password hunter22 -h db", "mysql --password <redacted> -h db"),
        ('tool --api-token "a b" --v', 'tool --api-token "<redacted>" --v'),
        ("curl -u admin:hunter22 http://x", "curl -u admin:<redacted> http://x"),
        ("curl --user=admin:hunter22 x", "curl --user=admin:<redacted> x"),
        # Authorization headers, whatever the scheme.
        ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer <redacted>"),
        ("-H 'Authorization: Basic dXNlcjpwYXNz'", "-H 'Authorization: Basic <redacted>'"),
        ('{"authorization":"tok123"}', '{"authorization":"<redacted>"}'),
        # Private keys, with or without their END line (a truncated log keeps no END).
        (
            f"x\n-----BEGIN RSA PRIVATE KEY-----\n{KEY_BODY}\n-----END RSA PRIVATE KEY-----\ny",
            "x\n<redacted private key>\ny",
        ),
        (
            f"x\n-----BEGIN OPENSSH PRIVATE KEY-----\n{KEY_BODY}\nlog line: next\n",
            "x\n<redacted private key>\nlog line: next\n",
        ),
        (f"-----BEGIN PRIVATE KEY-----\n{KEY_BODY}", "<redacted private key>"),
        # Paths are file names or etcd prefixes, not secrets: kept for diagnosis.
        ('FLANNEL_ETCD_KEY="/atomic.io/network"', 'FLANNEL_ETCD_KEY="/atomic.io/network"'),
        ("--service-account-key-file=/etc/k/sa.key", "--service-account-key-file=/etc/k/sa.key"),
        ("--token-auth-file /etc/k/tokens.csv", "--token-auth-file /etc/k/tokens.csv"),
        ("100: Key not found (/atomic.io/network)", "100: Key not found (/atomic.io/network)"),
        # Words that merely contain "pass" are no secret before a colon.
        ("3 checks passed: etcd, flannel", "3 checks passed: etcd, flannel"),
        ("journalctl -u etcd --since=-1h", "journalctl -u etcd --since=-1h"),
    ],
)
def test_redact_by_shape(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_known_secret_value_is_never_searched_for() -> None:
    """A weak become password ("etcd") replaced wherever it occurs would mark every place the
    word appears: an oracle. Only its assignment is hidden."""
    text = "ansible_become_password=etcd\netcd[393]: etcd started; the etcd cluster is healthy"
    assert redact(text) == (
        "ansible_become_password=<redacted>\netcd[393]: etcd started; the etcd cluster is healthy"
    )


def test_case_folded_names_are_still_found() -> None:
    # The patterns fold case; so does the cheap test that decides whether they run at all.
    for text in ("PA\u017f\u017fWORD=hunter2", "\u212aEY=hunter2", "X-AUTHORIZATION: hunter2"):
        assert "hunter2" not in redact(text), text
