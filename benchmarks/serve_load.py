"""Bounded load test of `netfrontier serve`'s what-if endpoint, beside the direct library call.

    .venv/bin/python benchmarks/serve_load.py [--store PATH] [--hw img-series4-1core]
        [--requests 200] [--concurrency 2] [--time-limit 120]

Starts `netfrontier serve --port 0` on 127.0.0.1 over the store's zoo (run `netfrontier zoo`
first), then sends a fixed number of POST /api/whatif requests from `--concurrency` clients,
each on its own keep-alive connection, and stops at the time limit whatever is left. Every
request asks for another DRAM bandwidth (between 1/4 and 4 times the preset's), so each is a
whole-zoo recost from the kept graphs, never a cached answer. Prints requests per second and
client-side p50/p90/p99 latency, the server's own recost time, and, measured in the same run in
this process, the direct library call: ZooState.cost_rows (the analytical estimate of every
stored graph, with its totals) for the same kind of spec, and the bare estimate loop.
Target on the 2-core machine: p99 under 300 ms for a whole-zoo recost.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs) + 0.5) - 1))]


def start_server(store: str | None) -> tuple[subprocess.Popen, str, int]:
    args = [sys.executable, "-c", "from netfrontier.cli import main; main()", "serve",
            "--port", "0"] + (["--store", store] if store else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"(\d+) models .* open http://127\.0\.0\.1:(\d+)/", line)
    if not m:
        proc.kill()
        sys.exit(f"the server did not start: {line}{proc.stderr.read()}")
    return proc, m.group(2), int(m.group(1))


def client(port: str, bodies: list[bytes], deadline: float, out: list, errors: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
    for body in bodies:
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        conn.request("POST", "/api/whatif", body, {"Content-Type": "application/json"})
        res = conn.getresponse()
        payload = res.read()
        dt = time.perf_counter() - t0
        if res.status != 200:
            errors.append(f"{res.status}: {payload[:200]!r}")
            continue
        out.append((dt, json.loads(payload)["recost_ms"] / 1e3))
    conn.close()


def library_times(store: str | None, hw_name: str, repeats: int) -> tuple[float, float, int]:
    """Median seconds of ZooState.cost_rows and of the bare estimate loop, new spec each time."""
    from netfrontier.cost.analytical import estimate
    from netfrontier.serve import api
    from netfrontier.serve.params import hardware
    from netfrontier.serve.state import ZooState
    from netfrontier.store import default_path

    state = ZooState(store or default_path())
    state.load()
    hw = hardware(hw_name, hw_name)
    base, raw = api.base_spec(hw, None)
    specs = [api.apply_whatif(base, raw, {"dram_bytes_per_s": hw.dram_bytes_per_s *
                                          (0.3 + 0.01 * i)})[0] for i in range(2 * repeats + 1)]
    graphs = [state.graph(n, 1) for n in state.by_batch[1]]
    state.cost_rows(specs[0])  # warm
    rows_t, bare_t = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        state.cost_rows(specs[1 + i])
        rows_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for g in graphs:
            estimate(g, specs[1 + repeats + i])
        bare_t.append(time.perf_counter() - t0)
    return statistics.median(rows_t), statistics.median(bare_t), len(graphs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", help="SQLite store with the zoo (default: $NETFRONTIER_STORE or "
                                    "the user cache)")
    ap.add_argument("--hw", default="img-series4-1core")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--time-limit", type=float, default=120.0, help="seconds")
    ap.add_argument("--library-repeats", type=int, default=20)
    a = ap.parse_args()

    load = os.getloadavg()[0]  # what else the machine is doing, before this run adds to it
    proc, port, models = start_server(a.store)
    try:
        from netfrontier.serve.params import hardware

        bw = hardware(a.hw, a.hw).dram_bytes_per_s
        bodies = [json.dumps({"hw": a.hw, "set": {"dram_bytes_per_s": bw * 4 ** (
            ((i * 7919) % 1000) / 500 - 1)}}).encode() for i in range(a.requests)]
        done: list = []
        errors: list = []
        per = [bodies[k::a.concurrency] for k in range(a.concurrency)]
        # one warm-up request (first connection, first spec), not counted
        client(port, [json.dumps({"hw": a.hw, "set": {"cores": 2}}).encode()],
               time.monotonic() + 60, [], errors)
        deadline = time.monotonic() + a.time_limit
        threads = [threading.Thread(target=client, args=(port, b, deadline, done, errors))
                   for b in per]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    if errors:
        sys.exit(f"{len(errors)} requests failed, e.g. {errors[0]}")
    lat = [d for d, _ in done]
    server = [s for _, s in done]
    cost_rows_s, bare_s, graphs = library_times(a.store, a.hw, a.library_repeats)
    print(f"what-if load test: {len(done)}/{a.requests} requests in {wall:.1f} s "
          f"(limit {a.time_limit:g} s), {a.concurrency} clients, {models} models per recost, "
          f"on {a.hw}, {os.cpu_count()} CPUs (load average {load:.1f} before the run)")
    print(f"  requests/s            {len(done) / wall:8.1f}")
    print(f"  latency p50           {1e3 * percentile(lat, 50):8.1f} ms")
    print(f"  latency p90           {1e3 * percentile(lat, 90):8.1f} ms")
    p99 = percentile(lat, 99)
    print(f"  latency p99           {1e3 * p99:8.1f} ms   (target < 300 ms: "
          f"{'met' if p99 < 0.3 else 'MISSED'})")
    print(f"  server recost p50     {1e3 * percentile(server, 50):8.1f} ms   (inside the "
          "request: spec check, estimates, frontier)")
    print(f"direct library call, same run ({graphs} graphs, median of {a.library_repeats}):")
    print(f"  ZooState.cost_rows    {1e3 * cost_rows_s:8.1f} ms   (estimate + totals per graph)")
    print(f"  estimate() loop       {1e3 * bare_s:8.1f} ms   "
          f"({1e3 * bare_s / max(graphs, 1):.2f} ms per graph)")


if __name__ == "__main__":
    main()
