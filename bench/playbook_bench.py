"""Benchmark: wall time of site.yml on a fresh lab (first run) and on a converged one (second
run), against `ansible all -m ping` on the same lab, the floor of any Ansible run there.

    python bench/playbook_bench.py [--runs N] [--keep]

Needs root and the lab's tools; boots a lab of its own (K8S_PROVISION_LAB_NAME, default
k8spbook) and takes it down at the end unless --keep. Goal: second run within 4x the floor."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from k8s_provision import lab as lab_api

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CHANGED_RE = re.compile(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)", re.MULTILINE)
GOAL = 4.0


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout[-3000:]}")
    return elapsed, result.stdout


def changed(output: str) -> str:
    return ", ".join(f"{host} {count}" for host, count in CHANGED_RE.findall(output))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="second runs and pings to time")
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    args = parser.parse_args()
    config = lab_api.make_config(os.environ.get("K8S_PROVISION_LAB_NAME") or "k8spbook")
    lab_api.down(config=config)  # a fresh lab: the first run must really be the first
    state = lab_api.up(nodes=2, config=config)
    inventory = str(state.inventory)
    ping = [str(VENV_BIN / "ansible"), "-i", inventory, "all", "-m", "ping"]
    site = [str(VENV_BIN / "ansible-playbook"), "-i", inventory, "k8s_provision.cluster.site"]
    try:
        timed(ping)  # opens the SSH control masters every later run reuses
        first, first_out = timed(site)
        # Interleaved, so the floor and the second runs see the same machine load.
        seconds, pings = [], []
        for _ in range(args.runs):
            seconds.append(timed(site))
            pings.append(timed(ping)[0])
    finally:
        if not args.keep:
            lab_api.down(config=config)
    second = statistics.median(s for s, _ in seconds)
    floor = statistics.median(pings)
    best = min(s for s, _ in seconds) / min(pings)
    print(f"ping floor (median of {args.runs}): {floor:.2f} s; pings: " + listing(pings))
    print(
        f"first site.yml run: {first:.2f} s ({first / floor:.1f}x), changed: {changed(first_out)}"
    )
    print(
        f"second run (median of {args.runs}): {second:.2f} s ({second / floor:.1f}x the floor,"
        f" goal <= {GOAL:.0f}x; best over best {best:.1f}x), changed: {changed(seconds[-1][1])}"
    )
    print("second runs: " + listing([s for s, _ in seconds]))


def listing(values: list[float]) -> str:
    return ", ".join(f"{v:.2f} s" for v in values)


if __name__ == "__main__":
    main()
