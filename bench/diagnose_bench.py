"""Benchmark: wall time of `diagnose` (collect from every host over SSH, evaluate, write the
bundle) on 3 lab hosts, against `verify` on the same lab, the floor of one batched SSH round
per host. Needs root; uses a lab of its own (k8spdbench, master + 2 nodes) converged by
site.yml, and takes it down at the end unless --keep.

    sudo .venv/bin/python bench/diagnose_bench.py [--runs 5] [--keep]

The parts are timed in-process (collect, evaluate, bundle) and the whole command as a
subprocess (what an operator waits for: Python start-up and ansible-core's inventory reading
included). Goal: the whole command within 5 s on 3 hosts. Both diagnose and verify make one
batched SSH round per host; diagnose runs about four times the commands (journals, files,
etcd and kubectl listings), in parallel on each host, so on a machine whose CPUs the lab hosts
share the ratio to verify grows with the load: the load average is printed with the figures."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from k8s_provision import diagnose, inventory, verify
from k8s_provision import lab as lab_api

BENCH_LAB = "k8spdbench"
REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
GOAL = 5.0  # seconds, the whole command on 3 hosts


def converge(config: lab_api.LabConfig) -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(config.inventory),
            "k8s_provision.cluster.site",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"site.yml failed (exit {result.returncode}):\n{result.stdout[-3000:]}")


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement")
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    args = parser.parse_args()
    config = lab_api.make_config(BENCH_LAB)
    state = lab_api.up(nodes=2, config=config)
    try:
        converge(config)
        cluster = inventory.load(state.inventory)
        parts: dict[str, list[float]] = {"collect": [], "evaluate": [], "bundle": []}
        commands: list[float] = []
        verifies: list[float] = []
        faulty: list[float] = []
        size = 0
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(args.runs):
                start = time.perf_counter()
                verify.verify(cluster)
                verifies.append(time.perf_counter() - start)

                start = time.perf_counter()
                collected = diagnose.collect(cluster)
                parts["collect"].append(time.perf_counter() - start)
                start = time.perf_counter()
                evaluation = diagnose.evaluate(cluster, collected, inventory=str(state.inventory))
                parts["evaluate"].append(time.perf_counter() - start)
                start = time.perf_counter()
                files = diagnose.bundle_files(
                    cluster,
                    collected,
                    evaluation,
                    root="bench",
                    inventory=str(state.inventory),
                    since="1h",
                    created=datetime.now(UTC),
                )
                diagnose.write_bundle(Path(tmp, f"p{run}.tar.gz"), "bench", files, mtime=0)
                parts["bundle"].append(time.perf_counter() - start)

                bundle = Path(tmp, f"run{run}.tar.gz")
                start = time.perf_counter()
                result = subprocess.run(
                    [str(VENV_BIN / "k8s-provision"), "diagnose", str(state.inventory), "-o",
                     str(bundle), "--json"],
                    capture_output=True,
                    text=True,
                    check=False,
                )  # fmt: skip
                commands.append(time.perf_counter() - start)
                if result.returncode != 0:
                    sys.exit(f"diagnose found problems on the converged lab:\n{result.stdout}")
                size = bundle.stat().st_size
            # diagnose runs when something is broken: a stopped member makes etcdctl wait.
            lab_api.ssh_run("node2", "systemctl stop etcd", config=config, check=True)
            for run in range(args.runs):
                start = time.perf_counter()
                diagnose.diagnose(
                    cluster, inventory=str(state.inventory), output=Path(tmp, f"f{run}.tar.gz")
                )
                faulty.append(time.perf_counter() - start)
            lab_api.ssh_run("node2", "systemctl start etcd", config=config, check=True)
    finally:
        if not args.keep:
            lab_api.down(config=config)
    total = [sum(values) for values in zip(*parts.values(), strict=True)]
    ratio = statistics.median(total) / statistics.median(verifies)
    print(f"hosts: {len(cluster.hosts)}; load average {os.getloadavg()[0]:.2f}")
    print(f"verify (in-process, the floor): {median(verifies)}")
    for name, values in parts.items():
        print(f"diagnose {name} (in-process): {median(values)}")
    print(f"diagnose collect + evaluate + bundle (in-process): {median(total)}")
    print(
        f"k8s-provision diagnose (the whole command, Python start-up included): {median(commands)}"
    )
    print(f"diagnose in-process, etcd stopped on node2: {median(faulty)}")
    print(f"bundle size: {size / 1024:.0f} KiB; diagnose/verify (in-process) = {ratio:.1f}x")
    verdict = "met" if statistics.median(commands) <= GOAL else "NOT met"
    print(f"goal: the whole command within {GOAL:.0f} s on 3 hosts: {verdict}")


if __name__ == "__main__":
    main()
