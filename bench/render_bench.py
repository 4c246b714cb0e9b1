"""Benchmark: validate and render inventories of 100 and 1000 hosts (load + render + write),
plain and kubespray-style (kubespray's group names and a group_vars tree of a few hundred
variables, tests/unit/data/kubespray).

    python bench/render_bench.py [--out-base DIR]

Goals: plain 1000 hosts under 2 s; kubespray-style 100 hosts under 2 s and 1000 under 10 s;
1000 hosts at most 12x the time of 100 (linear growth). Writing 4000 files is disk-bound: on a
busy disk, pass --out-base /dev/shm to time the tool rather than the disk."""

from __future__ import annotations

import argparse
import ipaddress
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from k8s_provision import inventory, render

KUBESPRAY_VARS = Path(__file__).parent.parent / "tests" / "unit" / "data" / "kubespray"


def make_inventory(hosts: int, where: Path, *, kubespray: bool = False) -> Path:
    base = ipaddress.ip_address("10.40.0.1")
    addresses = [str(base + i) for i in range(hosts)]
    nodes = {f"node{i}": {"ansible_host": addresses[i]} for i in range(1, hosts)}
    master = {"master": {"ansible_host": addresses[0]}}
    etcd = {"etcd": {"hosts": {"master": None, "node1": None, "node2": None}}}
    if kubespray:
        where = where / f"kubespray-{hosts}"
        shutil.copytree(KUBESPRAY_VARS, where)
        children = {
            "kube_control_plane": {"hosts": master},
            "kube_node": {"hosts": nodes},
            **etcd,
            "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
        }
    else:
        children = {"masters": {"hosts": master}, "nodes": {"hosts": nodes}, **etcd}
    path = where / f"hosts-{hosts}.yml"
    path.write_text(yaml.safe_dump({"all": {"children": children}}))
    return path


def best_of(runs: int, path: Path, out: Path) -> tuple[float, float, float]:
    """Best wall time, best wall time without the disk writes, and best CPU time (what the
    tool itself costs when other work shares the machine)."""
    totals, compute, cpu = [], [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        cluster = inventory.load(path)
        rendered = render.render_cluster(cluster)
        middle = time.perf_counter()
        render.write_rendered(rendered, out)
        totals.append(time.perf_counter() - start)
        compute.append(middle - start)
        cpu.append(time.process_time() - start_cpu)
    return min(totals), min(compute), min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out-base", type=Path, default=None)
    args = parser.parse_args()
    results: dict[tuple[str, int], tuple[float, float, float]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryDirectory(dir=args.out_base) as out,
    ):
        for style in ("plain", "kubespray"):
            for hosts in (100, 1000):
                path = make_inventory(hosts, Path(tmp), kubespray=style == "kubespray")
                target = Path(out) / f"{style}-{hosts}"
                results[style, hosts] = best_of(3, path, target)
    for (style, hosts), (total, compute, cpu) in results.items():
        print(
            f"{style:9s} {hosts:5d} hosts: {total:.3f} s"
            f" (load + render {compute:.3f} s; CPU {cpu:.3f} s)"
        )
    for style in ("plain", "kubespray"):
        ratio = results[style, 1000][0] / results[style, 100][0]
        print(f"{style} ratio 1000/100: {ratio:.1f}x (goal <= 12x)")


if __name__ == "__main__":
    main()
