"""Benchmark: how the commands scale with the cluster. For each lab size (3, 6, 12, 20 hosts
by default) it records `lab up`, the first converge (site.yml), a converged `up` (the fast path
and verify), `plan`, `verify`, `diagnose`, and the floor: `ansible all -m ping`. It writes the
table and a chart (matplotlib: `pip install -e '.[bench]'`) into docs/performance.md.

    sudo .venv/bin/python bench/scale_bench.py [--sizes 3,6,12,20] [--runs 3]

Needs root; uses a lab of its own (k8spscale) and takes it down at the end. Each timed command
runs as an operator runs it, a fresh process, so Python's and Ansible's start-up count on both
sides of a ratio. The median of --runs is recorded. Timing starts once the lab has settled after
its first converge (its kubelets, API server and etcd register and sync for minutes, and that
transient, not the commands, decided the ratios); the lab's own CPU use when idle is recorded
with each size, since its hosts share this machine's CPUs with the commands measured."""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from k8s_provision import lab

BENCH_LAB = "k8spscale"
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOC = REPO / "docs" / "performance.md"
CHART = REPO / "docs" / "performance.png"
SETTLE_WINDOW = 10.0  # seconds of the lab's CPU use compared, window after window
SETTLE_LIMIT = 300.0  # seconds at most spent waiting for the lab to settle
COLUMNS = ("lab up", "first converge", "converged up", "plan", "verify", "diagnose", "ping")
PAIRED = 3  # verify and diagnose are also timed on this many hosts of each lab


def timed(argv: Sequence[str], *, ok: tuple[int, ...] = (0,)) -> float:
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
    elapsed = time.monotonic() - started
    if result.returncode not in ok:
        sys.exit(
            f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout[-2000:]}"
            f"\n{result.stderr[-2000:]}"
        )
    return elapsed


def lab_cpu(state: lab.LabState) -> int:
    """Nanoseconds of CPU the lab's hosts have used so far (each host's cpuacct cgroup)."""
    return sum(
        int((Path(group) / "cpuacct.usage").read_text())
        for host in state.hosts
        for group in host.cgroups
        if Path(group).relative_to(lab.CGROUP_ROOT).parts[0] == "cpuacct"
    )


def settle(state: lab.LabState) -> float:
    """Wait until the lab's CPU use stops falling from one SETTLE_WINDOW to the next (or
    SETTLE_LIMIT passed); returns that use in cores."""
    deadline = time.monotonic() + SETTLE_LIMIT
    previous = None
    used = lab_cpu(state)
    while True:
        time.sleep(SETTLE_WINDOW)
        before, used = used, lab_cpu(state)
        cores = (used - before) / 1e9 / SETTLE_WINDOW
        if (previous is not None and cores > 0.9 * previous) or time.monotonic() > deadline:
            return cores
        previous = cores


def median(argv: Sequence[str], runs: int, *, ok: tuple[int, ...] = (0,)) -> float:
    return statistics.median(timed(argv, ok=ok) for _ in range(runs))


def paired(
    argv: Sequence[str], small: Sequence[str], runs: int, *, ok: tuple[int, ...] = (0,)
) -> tuple[float, float]:
    """The median of `argv` and its ratio to the median of `small`, run alternately."""
    full, few = [], []
    for _ in range(runs):
        few.append(timed(small, ok=ok))
        full.append(timed(argv, ok=ok))
    return statistics.median(full), statistics.median(full) / statistics.median(few)


def subset(inventory: Path, keep: int, path: Path) -> Path:
    """The lab inventory without the hosts after its first `keep` (master, node1, ...): the
    etcd members are the first three, so the subset is a whole cluster's view of them."""
    dropped = re.compile(r"^node(\d+)\b")
    lines = [
        line
        for line in inventory.read_text().splitlines(keepends=True)
        if not ((m := dropped.match(line)) and int(m[1]) >= keep)
    ]
    path.write_text("".join(lines))
    return path


def measure(size: int, runs: int, out: Path) -> dict[str, float]:
    config = lab.make_config(BENCH_LAB)
    lab.down(config=config)
    started = time.monotonic()
    state = lab.up(nodes=size - 1, config=config)
    row = {"lab up": time.monotonic() - started}
    inv = str(config.inventory)
    row["first converge"] = timed(
        [str(BIN / "ansible-playbook"), "-i", inv, "k8s_provision.cluster.site"]
    )
    row["idle lab"] = settle(state)
    k8sp = str(BIN / "k8s-provision")
    row["converged up"] = median([k8sp, "up", inv], runs)
    row["plan"] = median([k8sp, "plan", inv], runs)
    # verify and diagnose alternate with the same command on the lab's first 3 hosts: the
    # growth is read on one lab under one background load (a bigger lab has more kubelets).
    small = subset(config.inventory, PAIRED, out / f"{size}-first{PAIRED}.ini")
    # diagnose exits 1 when it finds something: measured either way, what it reads is the same.
    bundle = ["-o", str(out / f"{size}.tar.gz")]
    for verb, extra, ok in (("verify", [], (0,)), ("diagnose", bundle, (0, 1))):
        row[verb], row[f"{verb} growth"] = paired(
            [k8sp, verb, inv, *extra], [k8sp, verb, str(small), *extra], runs, ok=ok
        )
    row["ping"] = median([str(BIN / "ansible"), "all", "-i", inv, "-m", "ping"], runs)
    shown = (
        f"{k} {v:.2f}x" if k.endswith("growth") else f"{k} {v:.2f} cores" if k == "idle lab"
        else f"{k} {v:.1f} s"
        for k, v in row.items()
    )  # fmt: skip
    print(f"{size} hosts: " + ", ".join(shown), flush=True)
    return row


def table(rows: dict[int, dict[str, float]]) -> str:
    ratios = ("converged up / ping", "plan / ping", "verify / 3 of them", "diagnose / 3 of them")
    lines = [
        "| hosts | " + " | ".join((*COLUMNS, *ratios)) + " | idle lab (cores) |",
        "|" + "---|" * (len(COLUMNS) + len(ratios) + 2),
    ]
    for size, row in sorted(rows.items()):
        cells = [f"{row[c]:.1f}" for c in COLUMNS] + [
            f"{row['converged up'] / row['ping']:.2f}",
            f"{row['plan'] / row['ping']:.2f}",
            f"{row['verify growth']:.2f}",
            f"{row['diagnose growth']:.2f}",
            f"{row['idle lab']:.2f}",
        ]
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def growth(rows: dict[int, dict[str, float]], large: int = 12) -> str:
    """How verify and diagnose grow from 3 to `large` hosts (the goals: 1.3x and 1.5x), on
    the same lab and across the labs; empty when `large` was not measured."""
    if large not in rows:
        return ""
    same = ", ".join(
        f"{verb} {rows[large][f'{verb} growth']:.2f}x" for verb in ("verify", "diagnose")
    )
    text = f"From {PAIRED} to {large} hosts of one lab: {same}."
    if PAIRED in rows:
        across = ", ".join(
            f"{verb} {rows[large][verb] / rows[PAIRED][verb]:.2f}x"
            for verb in ("verify", "diagnose")
        )
        text += f" Between the {PAIRED}-host and the {large}-host lab: {across}."
    return text + "\n\n"


def chart(rows: dict[int, dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on a build machine
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 5))
    sizes = sorted(rows)
    for column in COLUMNS[2:]:
        axes.plot(sizes, [rows[s][column] for s in sizes], marker="o", label=column)
    axes.set_xlabel("hosts")
    axes.set_ylabel("seconds (median)")
    axes.set_xticks(sizes)
    axes.legend()
    axes.grid(alpha=0.3)
    figure.savefig(CHART, dpi=100, bbox_inches="tight")


def write(rows: dict[int, dict[str, float]]) -> None:
    """The chart, and the page's head with this run's table; the page's sections (earlier
    runs, written by hand with what changed between them) are kept."""
    chart(rows)
    page = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    sections = page[page.index("\n## ") :] if "\n## " in page else ""
    DOC.write_text(
        "# Performance\n\n"
        "Written by `bench/scale_bench.py` on this project's 2-core test machine, shared with"
        " other work. Each size is timed once its lab has settled after the first converge;"
        " `idle lab` is the CPU its hosts then use on their own (kubelets, API server, etcd),"
        " out of the machine's 2 cores. Seconds, median"
        " of the runs; `ping` is `ansible all -m ping`, the floor any SSH tool pays. Converged"
        " `up` is the fast path plus verify (one SSH round per host for both). `verify / 3 of"
        " them` and `diagnose / 3 of them`: the command's time over its time on the lab's first"
        " 3 hosts, the two run alternately on the same lab.\n\n"
        "Labs run the default `k8s_security: tls` with the lab's Kubernetes 1.20 binaries, so"
        " every node runs a kubelet and kube-proxy and the master an API server.\n\n"
        f"{table(rows)}\n\n{growth(rows)}![commands by cluster size]({CHART.name})\n" + sections,
        encoding="utf-8",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="3,6,12,20")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    lab.require_environment()
    rows: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="k8sp-scale-") as out:
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                rows[size] = measure(size, args.runs, Path(out))
                write(rows)  # after each size: a long run stopped early keeps what it measured
        finally:
            lab.down(config=lab.make_config(BENCH_LAB))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
