"""Benchmark: `verify` wall time on 3 and on 6 lab hosts. Needs root; uses a lab of its own
(k8spvbench, master + 5 nodes) and takes it down at the end.

    sudo .venv/bin/python bench/verify_bench.py [--runs 10]

The lab runs site.yml first, and the FAKE API server (tests/support/fake_apiserver.py, a test
double) on its master so the real kubectl calls are part of the time. 3 hosts is the lab's own
inventory cut to master, node1 and node2 (exactly what `lab up` with 2 nodes writes); 6 hosts is
the whole inventory. Runs alternate between the two, so load from other work on the machine
hits both sizes alike. Goal: 6 hosts within 1.3x of 3 hosts, since every host is checked in
parallel. The lab hosts share this machine's CPUs, so a machine that is already busy inflates
the 6-host time: the load average is printed with the figures."""

from __future__ import annotations

import argparse
import json
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from k8s_provision import inventory, lab, verify
from k8s_provision.model import Cluster

BENCH_LAB = "k8spvbench"
REPO = Path(__file__).resolve().parent.parent
FAKE_APISERVER = REPO / "tests" / "support" / "fake_apiserver.py"
FAKE_UNIT = "k8sp-fake-apiserver"


def converge(config: lab.LabConfig) -> None:
    playbook = Path(sys.executable).parent / "ansible-playbook"
    result = subprocess.run(
        [str(playbook), "-i", str(config.inventory), "k8s_provision.cluster.site"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"site.yml failed (exit {result.returncode}):\n{result.stdout[-3000:]}")


def start_fake_api(config: lab.LabConfig) -> None:
    cluster = inventory.load(config.inventory)
    # The double's own healthy scenario; a bench script cannot import tests/ as a package.
    ready_scenario = runpy.run_path(str(FAKE_APISERVER))["ready_scenario"]
    nodes = [(cluster.host(n).kube_node_name, cluster.host(n).ip) for n in cluster.nodes]
    scenario = ready_scenario(nodes, len(cluster.etcd))
    run = [
        f"systemctl stop {FAKE_UNIT}; true",
        "cat > /root/fake_apiserver.py",
        "cat > /root/fake-scenario.json",
        f"systemd-run --unit={FAKE_UNIT} python3 /root/fake_apiserver.py"
        f" --port {cluster.settings.kube_api_port} --scenario /root/fake-scenario.json"
        " && sleep 1",
    ]
    inputs = [None, FAKE_APISERVER.read_text(encoding="utf-8"), json.dumps(scenario), None]
    for command, text in zip(run, inputs, strict=True):
        lab.ssh_run("master", command, input=text, config=config, check=True)


def three_host_inventory(config: lab.LabConfig, where: Path) -> Path:
    lines = config.inventory.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if not line.startswith(("node3 ", "node4 ", "node5 "))]
    path = where / "inventory-3.ini"
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return path


def timed_verify(cluster: Cluster) -> float:
    started = time.perf_counter()
    report = verify.verify(cluster)
    elapsed = time.perf_counter() - started
    assert report.ok, [f"{c.host} {c.check}: {c.detail}" for c in report.failed]
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    lab.require_environment()
    config = lab.make_config(BENCH_LAB)
    times: dict[int, list[float]] = {3: [], 6: []}
    try:
        lab.down(config=config)
        lab.up(nodes=5, config=config)
        converge(config)
        start_fake_api(config)
        with tempfile.TemporaryDirectory() as tmp:
            clusters = {
                3: inventory.load(three_host_inventory(config, Path(tmp))),
                6: inventory.load(config.inventory),
            }
        for hosts, cluster in clusters.items():
            assert len(cluster.hosts) == hosts
            timed_verify(cluster)  # warm-up: kubectl fills its discovery cache
        load_before = os.getloadavg()[0]
        for _ in range(args.runs):
            for hosts, cluster in clusters.items():
                times[hosts].append(timed_verify(cluster))
        load_after = os.getloadavg()[0]
    finally:
        lab.down(config=config)

    print(f"\nverify wall time (verify.verify), {args.runs} alternating runs each:")
    for hosts, samples in times.items():
        print(
            f"  {hosts} hosts: median {statistics.median(samples):.2f} s,"
            f" min {min(samples):.2f} s, max {max(samples):.2f} s"
        )
    ratio = statistics.median(times[6]) / statistics.median(times[3])
    print(f"  ratio 6/3 hosts (medians): {ratio:.2f}x (goal <= 1.3x)")
    print(f"  machine load average: {load_before:.1f} before, {load_after:.1f} after")
    return 0 if ratio <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
