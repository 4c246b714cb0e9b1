"""Benchmark: validate and render inventories of 100 and 1000 hosts (load + render + write).

    python bench/render_bench.py

Goals: 1000 hosts under 5 s; 1000 hosts at most 12x the time of 100 (linear growth)."""

from __future__ import annotations

import ipaddress
import tempfile
import time
from pathlib import Path

import yaml

from k8s_provision import inventory, render


def make_inventory(hosts: int, where: Path) -> Path:
    base = ipaddress.ip_address("10.40.0.1")
    addresses = [str(base + i) for i in range(hosts)]
    nodes = {f"node{i}": {"ansible_host": addresses[i]} for i in range(1, hosts)}
    data = {
        "all": {
            "children": {
                "masters": {"hosts": {"master": {"ansible_host": addresses[0]}}},
                "nodes": {"hosts": nodes},
                "etcd": {"hosts": {"master": None, "node1": None, "node2": None}},
            }
        }
    }
    path = where / f"hosts-{hosts}.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def best_of(runs: int, path: Path, out: Path) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        cluster = inventory.load(path)
        render.write_rendered(render.render_cluster(cluster), out)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        results = {n: best_of(3, make_inventory(n, where), where / f"out-{n}") for n in (100, 1000)}
    for hosts, seconds in results.items():
        print(f"{hosts:5d} hosts: {seconds:.3f} s")
    print(
        f"ratio 1000/100: {results[1000] / results[100]:.1f}x (goal <= 12x); 1000 hosts goal < 5 s"
    )


if __name__ == "__main__":
    main()
