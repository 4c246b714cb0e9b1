from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from k8s_provision.lifecycle import MIGRATION_TAG, Change, changes_from_events


def test_changes_from_check_mode_events() -> None:
    events: list[dict[str, Any]] = [
        {"event": "play", "name": "etcd"},
        {
            "event": "diff",
            "host": "node1",
            "task": "Write etcd config",
            "changed": True,
            "diffs": [
                {
                    "before": 'ETCD_NAME="node1"\nETCD_INITIAL_CLUSTER_STATE="new"\n',
                    "after": 'ETCD_NAME="node1"\nETCD_INITIAL_CLUSTER_STATE="existing"\n',
                    "before_header": "/etc/default/etcd",
                    "after_header": "/root/.ansible/tmp/ansible-local-1/tmpx/etcd.conf.j2",
                }
            ],
        },
        {
            "event": "ok",
            "host": "node1",
            "task": "Write etcd config",
            "changed": True,
            "action": "ansible.builtin.template",
            "names": [],
            "state": None,
        },
        {
            "event": "ok",
            "host": "node1",
            "task": "Install etcd",
            "changed": True,
            "action": "ansible.builtin.package",
            "names": ["etcd"],
            "state": "present",
        },
        {
            "event": "ok",
            "host": "node1",
            "task": "restart etcd",
            "changed": True,
            "action": "ansible.builtin.systemd_service",
            "names": ["etcd"],
            "state": "restarted",
        },
        {"event": "ok", "host": "node2", "task": "Nothing", "changed": False},
        {
            "event": "diff",
            "host": "node2",
            "task": "Dir",
            "changed": True,
            "diffs": [
                {
                    "before": {"path": "/etc/k8s-provision", "state": "absent"},
                    "after": {"path": "/etc/k8s-provision", "state": "directory"},
                }
            ],
        },
    ]
    changes = changes_from_events(events)
    assert [(c.host, c.kind, c.path) for c in changes] == [
        ("node1", "file", "/etc/default/etcd"),
        ("node1", "package", "etcd"),
        ("node1", "service", "etcd"),
        ("node2", "file", "/etc/k8s-provision"),
    ]
    diff = changes[0].diff
    assert '-ETCD_INITIAL_CLUSTER_STATE="new"' in diff
    assert '+ETCD_INITIAL_CLUSTER_STATE="existing"' in diff
    assert changes[2] == Change("node1", "service", "etcd", "restarted")
    assert changes[3].diff == "state: absent -> directory"


def test_a_file_task_without_a_diff_is_still_a_change() -> None:
    # The certificates role copies keys with diff: false and no_log: only its result comes.
    events: list[dict[str, Any]] = [
        {
            "event": "ok",
            "host": "node7",
            "task": "certificates : Install the certificates and keys",
            "changed": True,
            "action": "ansible.builtin.copy",
            "names": [],
            "state": None,
        },
        {"event": "ok", "host": "node8", "task": "t", "changed": False, "action": "copy"},
    ]
    assert changes_from_events(events) == [
        Change("node7", "task", "certificates : Install the certificates and keys", "would change")
    ]


def test_no_changes_gives_an_empty_plan() -> None:
    events = [
        {"event": "ok", "host": "a", "task": "t", "changed": False},
        {"event": "diff", "host": "a", "task": "t", "changed": False, "diffs": []},
    ]
    assert changes_from_events(events) == []


def test_a_migration_leads_the_plan_whatever_ran_before_it() -> None:
    events: list[dict[str, Any]] = [
        {
            "event": "ok",
            "host": "master",
            "task": "Install etcd",
            "changed": True,
            "action": "ansible.builtin.package",
            "names": ["etcd"],
            "state": "present",
            "tags": [],
            "msg": "",
        },
        {
            "event": "ok",
            "host": "master",
            "task": "Migrate etcd from plaintext to TLS, one member at a time",
            "changed": True,
            "action": "ansible.builtin.debug",
            "names": [],
            "state": None,
            "tags": [MIGRATION_TAG],
            "msg": "certificates first on master, node1, then https on master, node1",
        },
    ]
    changes = changes_from_events(events)
    assert [(c.kind, c.path) for c in changes] == [
        ("migration", "Migrate etcd from plaintext to TLS, one member at a time"),
        ("package", "etcd"),
    ]
    assert changes[0].diff.startswith("certificates first on master, node1")


def test_the_etcd_role_announces_its_migration_with_the_tag_plan_reads() -> None:
    role = Path(__file__).resolve().parents[2] / "ansible_collections/k8s_provision/cluster/roles"
    tasks = yaml.safe_load((role / "etcd/tasks/migrate.yml").read_text())
    assert MIGRATION_TAG in tasks[0]["tags"] and tasks[0]["changed_when"] is True
