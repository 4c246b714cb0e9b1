"""The probe layer without hosts: each probe's parser, the batch framing, and the shared
collector (one SSH command per host for all of its probes, then the clock on that session)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from k8s_provision import inventory, probes, ssh
from k8s_provision.model import Cluster, Host
from k8s_provision.probes import (
    TIMED_OUT,
    HostFacts,
    Output,
    Probe,
    batch,
    etcd,
    firewalld,
    flannel,
    iptables,
    network,
    raw,
    systemd,
)
from k8s_provision.probes import host as host_probes
from k8s_provision.probes import http as http_probe
from tests.unit.diagnose_faults import (
    FIREWALLD_IPTABLES,
    IPTABLES_SERVICES,
    NOW,
    journal,
    stamp,
)
from tests.unit.test_verify_unit import (
    LEASES,
    REFUSED,
    SS_LAB,
    UNHEALTHY,
    http,
    leases_body,
    units_text,
)

REFERENCE = Path(__file__).resolve().parent.parent.parent / "inventories" / "reference.ini"
NEEDS_SH = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("sh", "timeout", "cat", "mktemp", "date")),
    reason="needs sh, timeout, cat, mktemp and date",
)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return inventory.load(REFERENCE)


# ---------------------------------------------------------------------------------------------
# A probe pairs its command with its parser


def test_a_probe_is_read_with_its_own_parser() -> None:
    probe = systemd.units(["etcd", "flanneld"])
    assert probe.command.endswith("-- etcd.service flanneld.service")
    facts = HostFacts("node1", {"units": Output(0, units_text({"etcd": "active"}))})
    assert facts.read(probe) == {
        "etcd": systemd.UnitState("loaded", "active", "running", "enabled")
    }
    assert HostFacts("node1").read(probe) is None  # not run on this host
    failed = HostFacts("node1", {"units": Output(1, "", "Failed to connect to bus")})
    assert failed.read(probe) == {}
    assert (
        HostFacts("n", {"listen": Output(127, "", "ss: not found")}).read(network.listening())
        is None
    )


def test_member_list_parser_keeps_the_output_for_errors() -> None:
    text = (
        '{"header":{"cluster_id":17},"members":[{"name":"master","peerURLs":'
        '["http://192.168.10.1:2380"]},{"peerURLs":["http://192.168.10.3:2380"]}]}'
    )
    listed = etcd.parse_member_list(Output(0, text))
    assert listed.cluster_id == 17
    assert listed.members == (
        etcd.Member("master", ("http://192.168.10.1:2380",)),
        etcd.Member("", ("http://192.168.10.3:2380",)),
    )
    refused = etcd.parse_member_list(Output(1, "", "Error: connection refused"))
    assert refused.members is None and refused.output.exit_code == 1
    assert etcd.parse_member_list(Output(0, "[1]")).members is None


def test_os_release_and_selinux_parsers() -> None:
    release = 'NAME="CentOS Linux"\nID="centos"\nID_LIKE="rhel fedora"\n'
    assert host_probes.parse_os_release(release) == {"centos", "rhel", "fedora"}
    assert (
        HostFacts("n", {"getenforce": Output(0, "Enforcing\n")}).read(host_probes.selinux())
        == "Enforcing"
    )
    assert HostFacts("n", {"getenforce": Output(127)}).read(host_probes.selinux()) is None


def _run_batch(probes: list[Probe[Any]], timeout: int) -> tuple[dict[str, Output], float]:
    script = batch.batch_script(probes, timeout=timeout)
    started = time.monotonic()
    result = subprocess.run(["sh", "-c", script], capture_output=True, timeout=30, check=False)
    # Decoded as HostSession.run decodes what the host printed.
    stdout = result.stdout.decode("utf-8", "replace")
    return batch.parse_batch(stdout, probes), time.monotonic() - started


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("sh", "timeout", "cat", "mktemp")),
    reason="needs sh, timeout, cat and mktemp",
)
def test_batch_script_runs_probes_in_parallel_and_frames_their_output() -> None:
    probes = [
        Probe("plain", "printf 'two\\nlines'", raw),
        Probe("failing", f"echo 'to stderr {batch.MARK} x 0' >&2; exit 3", raw),
        Probe("slow", "echo started; sleep 5", raw),
        Probe("binary", "printf '\\000\\377'", raw),
        Probe("builtin", "cd / && pwd", raw),
        Probe("assignment", "K8SP_BATCH=set env", raw),
        Probe("expansion", "echo $((1 + 2))", raw),
        # Parsed on its own: a probe that is not valid sh fails alone.
        Probe("broken", "if then fi )", raw),
        Probe("after-broken", "echo fine", raw),
        Probe("exits", "exit 7; echo unreachable", raw),
        Probe("quotes", "printf '%s|' \"a'b\" 'c\"d' \\$HOME", raw),
        # The framing's mark is not the probe's to print.
        Probe("mark", 'echo "[$k8sp_mark]"', raw),
    ]
    outputs, elapsed = _run_batch(probes, timeout=1)
    assert outputs["plain"] == Output(0, "two\nlines", "")
    assert outputs["failing"].exit_code == 3
    assert outputs["failing"].stderr == f"to stderr {batch.MARK} x 0\n"
    # Killed at the deadline: timeout's exit code, with what it printed before.
    assert outputs["slow"] == Output(TIMED_OUT, "started\n", "")
    assert elapsed < 4  # the script ended at the deadline, not when the probe would have
    assert outputs["binary"] == Output(0, "\x00\ufffd", "")
    assert outputs["builtin"] == Output(0, "/\n", "")
    assert "K8SP_BATCH=set" in outputs["assignment"].stdout.splitlines()
    assert outputs["expansion"].stdout == "3\n"
    assert outputs["broken"].exit_code == 2 and "syntax" in outputs["broken"].stderr.lower()
    assert outputs["after-broken"] == Output(0, "fine\n", "")
    assert outputs["exits"] == Output(7, "", "")
    assert outputs["quotes"].stdout == "a'b|c\"d|$HOME|"
    assert outputs["mark"] == Output(0, "[]\n", "")


def _running(command: str) -> list[int]:
    """The processes whose command line is `command`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue
        if [a.decode(errors="replace") for a in argv] == command.split():
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not shutil.which("timeout"), reason="needs coreutils timeout")
def test_every_probe_stops_at_the_deadline_and_the_finished_ones_keep_their_output() -> None:
    stuck = "sleep 29.25"  # a duration no other process here sleeps for
    probes = [
        Probe("quick", "echo done", raw),
        *(Probe(f"stuck{i}", stuck, raw) for i in range(3)),
        # Its own children go too: timeout signals the whole process group.
        Probe("tree", f"{stuck} | cat", raw),
    ]
    outputs, elapsed = _run_batch(probes, timeout=1)
    assert outputs["quick"] == Output(0, "done\n", "")
    assert {outputs[f"stuck{i}"].exit_code for i in range(3)} == {TIMED_OUT}
    assert outputs["tree"].exit_code == TIMED_OUT
    assert elapsed < 4
    deadline = time.monotonic() + 3
    while _running(stuck) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running(stuck) == []


def test_parse_batch_reads_a_missing_or_cut_exit_code_as_timed_out() -> None:
    probes = [Probe("a", "x", raw), Probe("b", "y", raw), Probe("c", "z", raw)]

    def framed(files: dict[str, str], end: bool = True) -> str:
        body = "".join(f"{batch.MARK} {name}\n{data}" for name, data in files.items())
        return "noise\n" + body + (f"{batch.MARK} end\n" if end else "")

    files = {"0.rc": "0\n", "1.rc": "", "0.out": "ok", "1.out": "half\n", "2.err": "e"}
    assert batch.parse_batch(framed(files), probes) == {
        "a": Output(0, "ok", ""),
        "b": Output(TIMED_OUT, "half\n", ""),  # killed while writing its exit code
        "c": Output(TIMED_OUT, "", "e"),
    }
    # Output that is not the framing (sudo refused, no mktemp on the host) is no output, and
    # so is framing cut short before its end line.
    assert batch.parse_batch("sudo: a password is required\n", probes) == {}
    assert batch.parse_batch(framed(files, end=False), probes) == {}
    # A header of another run (another token) is a probe's output, not a header.
    other = "@@k8s-provision-" + "0" * 32 + "@@"
    assert batch.parse_batch(framed({"0.out": f"{other} 1.out\nx"}), probes)["a"] == Output(
        TIMED_OUT, f"{other} 1.out\nx", ""
    )


def test_parse_units_matches_blocks_by_position() -> None:
    text = units_text({"etcd": "active", "kube-apiserver": "not-found", "flanneld": "failed"})
    states = systemd.parse_units(text, ["etcd", "kube-apiserver", "flanneld"])
    assert states["etcd"].active == "active"
    assert not states["kube-apiserver"].installed
    assert states["flanneld"].active == "failed"


# `systemctl status --no-pager -l -n 0 -- etcd.service kubelet.service flanneld.service` as
# systemd 252 prints it (a stopped unit's glyph, a unit without a description), flanneld not
# installed.
STATUS = """\
● etcd.service - Etcd Server
     Loaded: loaded (/lib/systemd/system/etcd.service; enabled; preset: enabled)
     Active: active (running) since Wed 2026-12-02 17:35:40 UTC; 2min ago
   Main PID: 393 (etcd)

○ kubelet.service
     Loaded: loaded (/etc/systemd/system/kubelet.service; disabled; preset: enabled)
     Active: inactive (dead)
"""


def test_status_is_split_into_each_units_share() -> None:
    probe = systemd.status(["etcd", "kubelet", "flanneld"])
    assert probe.command.endswith("-- etcd.service kubelet.service flanneld.service")
    stderr = (
        "Warning: The unit file, source configuration file or drop-ins of kubelet.service"
        " changed on disk. Run 'systemctl daemon-reload' to reload units.\n"
        "Unit flanneld.service could not be found.\n"
    )
    shares = probe.parse(Output(4, STATUS, stderr))
    assert list(shares) == ["etcd", "kubelet", "flanneld"]
    assert shares["etcd"].stdout.startswith("● etcd.service - Etcd Server\n")
    assert shares["etcd"].stdout.endswith("Main PID: 393 (etcd)\n")
    assert shares["etcd"].stderr == "" and shares["etcd"].exit_code == 4
    assert shares["kubelet"].stdout == STATUS[STATUS.index("○ kubelet") :]
    assert shares["kubelet"].stderr == stderr.splitlines(keepends=True)[0]
    assert shares["flanneld"] == Output(4, "", "Unit flanneld.service could not be found.\n")
    # Outside a UTF-8 locale the glyph is an asterisk.
    assert list(systemd.split_status(Output(0, STATUS.replace("●", "*")))) == ["etcd", "kubelet"]


def test_etcdctl_problem_skips_json_log_lines() -> None:
    output = Output(1, "", UNHEALTHY.replace("{ip}", "192.168.10.2"))
    assert etcd.etcdctl_problem(output) == "failed to commit proposal: context deadline exceeded"
    assert "not installed" in etcd.etcdctl_problem(Output(127, "", "etcdctl: not found"))


@pytest.mark.parametrize(
    ("ss", "port", "expected"),
    [
        (SS_LAB.format(ip="192.168.10.1"), 2379, ["127.0.0.1", "192.168.10.1"]),
        (SS_LAB.format(ip="192.168.10.1"), 8080, ["0.0.0.0"]),  # noqa: S104 -- text, no bind
        # iproute2 4.11 (CentOS 7) spells wildcards * and :::
        ("State Recv-Q Send-Q Local Address:Port Peer Address:Port\n"
         "LISTEN 0 128 *:8080 *:*\nLISTEN 0 128 :::8080 :::*\n", 8080, ["*", "::"]),
        ("LISTEN 0 128 [::ffff:127.0.0.1]:8080 [::]:*\n", 8080, ["::ffff:127.0.0.1"]),
    ],
)  # fmt: skip
def test_listeners(ss: str, port: int, expected: list[str]) -> None:
    assert network.listeners(ss, port) == expected


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True), ("0.0.0.0", False),  # noqa: S104
     ("*", False), ("::", False), ("192.168.10.1", False)],
)  # fmt: skip
def test_is_loopback(address: str, loopback: bool) -> None:
    assert network.is_loopback(address) is loopback


def test_split_http() -> None:
    assert http_probe.split_http(http("ok")) == (200, "ok")
    refused = Output(7, "\n000", REFUSED.format(ip="192.168.10.1"))
    assert http_probe.split_http(refused) == (None, "")


def test_parse_leases() -> None:
    assert flannel.parse_leases(leases_body(LEASES), "/atomic.io/network") == LEASES


def test_parse_disk() -> None:
    (usage,) = host_probes.parse_disk(
        "k /var/lib/etcd /dev/mapper/centos-var 1000 960 40 96% /var\n"
    )
    assert (usage.path, usage.use_pct, usage.free, usage.mount) == ("/var/lib/etcd", 96, 40, "/var")
    assert host_probes.parse_disk("i / overlay 0 0 0 - /\n") == []


def test_disk_probe_reads_each_existing_path_in_order(tmp_path: Path) -> None:
    odd = tmp_path / "data"
    odd.mkdir()
    probe = host_probes.disk(["/", str(tmp_path / "missing"), str(odd)])
    out = subprocess.run(["sh", "-c", probe.command], capture_output=True, text=True, check=True)
    usages = HostFacts("here", {"disk": Output(0, out.stdout)}).read(probe)
    assert usages is not None
    assert [(u.kind, u.path) for u in usages] == [
        ("k", "/"),
        ("k", str(odd)),
        ("i", "/"),
        ("i", str(odd)),
    ]
    nothing = host_probes.disk([str(tmp_path / "missing")])
    assert subprocess.run(["sh", "-c", nothing.command], check=False).returncode == 0


def test_firewalld_open_ports_and_services() -> None:
    listing = (
        "public (active)\n  target: default\n  services: ssh etcd-client\n"
        "  ports: 2380/tcp 10250-10252/tcp 8285/udp\n"
    )
    accept_all, opened = firewalld.firewalld_open(listing)
    assert not accept_all
    assert {"2379/tcp", "2380/tcp", "10250/tcp", "10252/tcp", "8285/udp"} <= opened
    assert firewalld.firewalld_open("trusted\n  target: ACCEPT\n")[0]


# ---------------------------------------------------------------------------------------------
# The shared collector


class LocalSession:
    """Test double for ssh.HostSession (no SSH server here): runs each command with the local
    sh, as the remote shell would, and records the commands."""

    def __init__(self, host: Host, commands: list[str], fail: str | None = None) -> None:
        self.host = host
        self.commands = commands
        self.fail = fail

    def run(self, command: str, timeout: float = 60.0) -> ssh.Result:
        self.commands.append(command)
        if self.fail is not None:
            return ssh.Result(self.host.name, command, None, error=self.fail)
        done = subprocess.run(
            ["sh", "-c", command], capture_output=True, text=True, timeout=timeout, check=False
        )
        return ssh.Result(self.host.name, command, done.returncode, done.stdout, done.stderr)


def local_hosts(
    monkeypatch: pytest.MonkeyPatch, sent: dict[str, list[str]], unreachable: str = ""
) -> None:
    def on_hosts(
        hosts: list[Host], work: Callable[[Any], Any], *, timeout: float = 0
    ) -> dict[str, Any]:
        return {
            h.name: work(
                LocalSession(
                    h,
                    sent.setdefault(h.name, []),
                    "timed out connecting" if h.name == unreachable else None,
                )
            )
            for h in hosts
        }

    monkeypatch.setattr(ssh, "on_hosts", on_hosts)


@NEEDS_SH
def test_collector_sends_one_script_per_host_then_reads_the_clock(
    monkeypatch: pytest.MonkeyPatch, cluster: Cluster
) -> None:
    sent: dict[str, list[str]] = {}
    local_hosts(monkeypatch, sent, unreachable="node2")

    def plan(host: Host) -> list[Probe[Any]]:
        return [
            Probe("name", f"echo {host.name}", lambda out: out.stdout.strip()),
            Probe("fails", "echo oops >&2; exit 4", raw),
        ]

    before = time.time()
    got = probes.collect(cluster, plan, what="check", script_timeout=10, clock=True)
    assert got["master"].facts.read(plan(cluster.host("master"))[0]) == "master"
    assert got["master"].facts.outputs["fails"] == Output(4, "", "oops\n")
    assert got["master"].commands == {"name": "echo master", "fails": "echo oops >&2; exit 4"}
    assert len(sent["master"]) == 2  # the batch script, then `date` on the same session
    assert sent["master"][1] == "date +%s.%N"
    clock = got["master"].clock
    assert clock is not None and clock.host_time is not None and clock.host_time >= before
    assert clock.offset is not None and abs(clock.offset) < 5
    assert got["node2"].facts.error == "timed out connecting"
    assert len(sent["node2"]) == 1 and got["node2"].clock is None


@NEEDS_SH
def test_a_script_that_cannot_run_is_the_hosts_error(
    monkeypatch: pytest.MonkeyPatch, cluster: Cluster
) -> None:
    sent: dict[str, list[str]] = {}
    local_hosts(monkeypatch, sent)
    # A batch that dies before framing its probes, as when sudo refuses or mktemp is missing.
    monkeypatch.setattr(
        probes.collector,
        "batch_script",
        lambda _: "echo 'sudo: a password is required' >&2; exit 1",
    )
    got = probes.collect(
        cluster, lambda host: [Probe("name", "true", raw)], what="check", script_timeout=10
    )
    assert got["node1"].facts.error == (
        "the check script failed on 192.168.10.2 (exit 1): sudo: a password is required"
    )


def test_last_run_of_notify_and_simple_units() -> None:
    notify = systemd.parse_journal(
        journal(
            "n",
            "etcd",
            (1, "old run"),
            (2, "systemd: Stopped etcd.service."),
            (3, "systemd: Starting etcd.service..."),
            (3, "member x has already been bootstrapped"),
            (4, "systemd: Started etcd.service."),
            (5, "systemd: etcd.service: Deactivated successfully."),
        )
    )
    assert [line.message for line in systemd.last_run(notify)][1] == (
        "member x has already been bootstrapped"
    )
    simple = systemd.parse_journal(
        journal(
            "n",
            "kubelet",
            (1, "systemd: Starting kubelet.service..."),
            (1, "systemd: Started kubelet.service."),
            (2, "systemd: kubelet.service: Main process exited, code=exited"),
            (3, "systemd: Started kubelet.service."),
            (4, "F0101 failed to run Kubelet"),
        )
    )
    run = systemd.last_run(simple)
    assert [line.message for line in run] == [
        "Started kubelet.service.",
        "F0101 failed to run Kubelet",
    ]
    assert systemd.last_error(run) == "F0101 failed to run Kubelet"
    assert systemd.last_error([]) == "no log lines in the collected window"


def test_journal_continuation_lines_and_headers() -> None:
    text = (
        "-- Logs begin at Mon 2026-01-01 --\n"
        f"{stamp(NOW)} node1 etcd[9]: panic: boom\n"
        "goroutine 1 [running]:\n"
        "-- No entries --\n"
    )
    lines = systemd.parse_journal(text)
    assert [(line.time, line.message) for line in lines] == [
        (NOW, "panic: boom"),
        (NOW, "goroutine 1 [running]:"),
    ]


def blocked(text: str, ports: list[str], source: str = "192.168.10.2") -> dict[str, str | None]:
    found = iptables.blocked_ports(iptables.parse_iptables(text), ports, "192.168.10.1", [source])
    return {port: rule.line if rule else None for port, rule in found.items()}


def test_iptables_services_rejects_all_but_ssh() -> None:
    catch_all = "-A INPUT -j REJECT --reject-with icmp-host-prohibited"
    assert blocked(IPTABLES_SERVICES.format(extra=""), ["22/tcp", "2379/tcp", "8285/udp"]) == {
        "2379/tcp": catch_all,
        "8285/udp": catch_all,
    }
    opened = "-A INPUT -p tcp -m multiport --dports 2379,2380 -j ACCEPT\n"
    assert blocked(IPTABLES_SERVICES.format(extra=opened), ["2379/tcp", "2380/tcp"]) == {}


def test_firewalld_chains_through_goto() -> None:
    # The KUBE-FIREWALL DROP matches only marked packets: never a claimed drop.
    assert blocked(FIREWALLD_IPTABLES, ["2379/tcp", "2380/tcp", "8080/tcp"]) == {
        "8080/tcp": "-A INPUT -j REJECT --reject-with icmp-host-prohibited"
    }


def test_iptables_sources_policy_and_uncertain_rules() -> None:
    by_source = "*filter\n:INPUT ACCEPT\n-A INPUT -s 192.168.10.3/32 -p tcp --dport 2380 -j DROP\n"
    assert blocked(by_source, ["2380/tcp"], source="192.168.10.2") == {}
    assert blocked(by_source, ["2380/tcp"], source="192.168.10.3") == {
        "2380/tcp": "-A INPUT -s 192.168.10.3/32 -p tcp --dport 2380 -j DROP"
    }
    policy = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"
    assert blocked(policy, ["2379/tcp"]) == {"2379/tcp": None}
    negated = "*filter\n:INPUT ACCEPT\n-A INPUT ! -s 192.168.10.0/24 -j DROP\n"
    assert blocked(negated, ["2379/tcp"]) == {}
    other_table = "*nat\n:PREROUTING ACCEPT\n-A PREROUTING -j DROP\nCOMMIT\n"
    assert blocked(other_table, ["2379/tcp"]) == {}
