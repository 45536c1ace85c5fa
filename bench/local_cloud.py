"""The local cloud's figures (start-up, PutItem throughput, replication lag, memory), measured as a user of `LocalCloud` sees them.

    python -m bench.local_cloud [--startup-runs 3] [--put-seconds 15] [--put-threads 16]
                                [--lag-rate 100] [--lag-seconds 10]
                                [--soak-minutes 10] [--soak-rate 60] [--skip startup,put,lag,soak]

Prints:
 (a) start-up of a two-region cloud with the reference deployment: from launching the child
     process (gameday.localcloud.process.launcher.LocalCloud) to its ready line, median of --startup-runs, with the
     in-process breakdown the cloud reports (interpreter + imports up to main, init, imports,
     components, provisioning through CloudFormation). Goal: under 2 s.
 (b) PutItem requests/s through one regional endpoint (POST {api_url}/item, unique ids) from a
     separate client process with --put-threads threads (bench/dataplane_put.py's client), and
     ms of cloud-process CPU per request (psutil): on a shared machine requests/s follows the CPU
     the cloud gets, the CPU per request does not. Goal: at least 300/s on 2 cores.
 (c) replication lag beyond the configured delay, p50/p99, from the cloud's ground truth
     (GET {control_url}/events?kind=replication_applied: lag_s - delay), while writing at a
     steady --lag-rate through one region. Goal: under 10 ms.
 (d) resident memory (RSS) of a fresh cloud process after start and after --soak-minutes of steady
     traffic (--soak-rate requests/s, half writes over a bounded key space so the tables stay the
     same size, half reads, alternating regions; the health checkers run throughout). Goal: under
     10% growth. Use --soak-minutes 1 (or --skip soak) for short runs; tests never run the soak.
Bounded: every phase has a deadline; every cloud and client process started is stopped.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import requests
from bench.dataplane_put import _client as put_client  # the PutItem load client
from bench.replication_lag import percentile
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from gameday.localcloud.process.launcher import LocalCloud

ROOT = Path(__file__).resolve().parent.parent

PHASES = ("startup", "put", "lag", "soak")


_last_cpu_counters: list[tuple[int, int]] = []


def _steal_since_last_note() -> float | None:
    """% of CPU time the hypervisor took from this VM since the previous note (Linux /proc/stat:
    the 8th counter is steal): a virtual machine's figures drop when its host is busy."""
    try:
        with open("/proc/stat") as stat:
            counters = [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    now = (sum(counters), counters[7])
    previous = _last_cpu_counters[-1] if _last_cpu_counters else None
    _last_cpu_counters[:] = [now]
    if previous is None or now[0] <= previous[0]:
        return None
    return 100 * (now[1] - previous[1]) / (now[0] - previous[0])


def load_note() -> str:
    """Load average vs cores (and CPU steal on a VM), with a warning when the machine is oversubscribed."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    note = f"load average {load:.1f} on {cores} cores"
    steal = _steal_since_last_note()
    if steal is not None:
        note += f", CPU steal {steal:.0f}%"
    if load > cores or (steal or 0) > 5:
        note += " (WARNING: the machine is oversubscribed; wall-clock figures are inflated)"
    return note


def cloud_process(cloud: LocalCloud) -> psutil.Process:
    assert cloud._proc is not None  # noqa: SLF001 - the bench measures the child process itself
    return psutil.Process(cloud._proc.pid)  # noqa: SLF001


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def get_json(url: str, **params: Any) -> Any:
    response = requests.get(url, params=params, timeout=30)
    response.raise_for_status()
    return response.json()


# -- (a) start-up ---------------------------------------------------------------------------------
def measure_startup(runs: int) -> dict[str, Any]:
    rows = []
    for _ in range(runs):
        launched = time.time()
        t0 = time.perf_counter()
        with LocalCloud() as cloud:
            ready = time.perf_counter() - t0
            cpu = cpu_seconds(cloud_process(cloud))
            parts = dict(cloud.description.get("startup_breakdown") or {})
            entered = parts.pop("main_entered_at", None)
            parts["to_main_s"] = (entered - launched) if entered else float("nan")
            parts["in_process_s"] = cloud.description.get("startup_s", float("nan"))
            rows.append({"ready_s": ready, "cpu_s": cpu, **parts})
    keys = ("cpu_s", "to_main_s", "init_s", "imports_s", "components_s", "provision_s", "in_process_s")
    return {"runs": [r["ready_s"] for r in rows], "ready_s": statistics.median(r["ready_s"] for r in rows),
            **{k: statistics.median(r.get(k, float("nan")) for r in rows) for k in keys}}


# -- (b) PutItem throughput -----------------------------------------------------------------------
def measure_put(cloud: LocalCloud, seconds: float, threads: int) -> dict[str, Any]:
    url = cloud.description["regions"][0]["api_url"]
    for _ in range(3):  # cold start of the handlers and moto's first DynamoDB call are not the figure
        warm = requests.post(f"{url}/item", json={"id": 0, "name": "warm"}, timeout=30)
        warm.raise_for_status()
    proc = cloud_process(cloud)
    idle0, began = cpu_seconds(proc), time.monotonic()
    time.sleep(3.0)  # a measurement window, not a poll: the cloud's own CPU (health checkers) without load
    idle_cores = (cpu_seconds(proc) - idle0) / (time.monotonic() - began)
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    client = spawn.Process(target=put_client, args=(url, "put", threads, seconds, results), daemon=True)
    client.start()
    try:
        # the client takes a moment to import; count the cloud's CPU over the client's own window
        cpu0 = cpu_seconds(proc)
        figures = results.get(timeout=seconds + 120)
        cpu = cpu_seconds(proc) - cpu0
    finally:
        client.join(timeout=30)
        if client.is_alive():
            client.kill()
            client.join(5)
    figures["url"] = url
    figures["rate"] = figures["requests"] / figures["elapsed_s"]
    figures["cpu_ms_per_request"] = 1000 * cpu / max(1, figures["requests"])
    figures["idle_cores"] = idle_cores
    figures["net_cpu_ms_per_request"] = 1000 * (cpu - idle_cores * figures["elapsed_s"]) / max(1, figures["requests"])
    figures["cloud_cores"] = cpu / figures["elapsed_s"]
    figures["load"] = load_note()
    return figures


# -- steady writer/reader (lag and soak) ------------------------------------------------------------
def steady_client(urls: list[str], rate: float, seconds: float, write_share: float, key_space: int,
                  id_base: int, results: Any) -> None:
    """Runs in a child process: `rate` requests/s for `seconds`, paced by slot (no catch-up bursts),
    writes over ids id_base..id_base+key_space-1, reads of ids already written, alternating urls."""
    threads = max(2, min(16, int(rate // 10) + 2))
    lock = threading.Lock()
    counts = {"sent": 0, "ok": 0, "failed": 0, "late": 0}
    next_slot = [0]
    stop = threading.Event()
    t0 = time.monotonic() + 0.2
    total = int(rate * seconds)
    give_up = t0 + seconds + 10  # a cloud that cannot keep up: skip the remaining slots, stay bounded

    def worker() -> None:
        session = requests.Session()
        while not stop.is_set():
            with lock:
                slot = next_slot[0]
                next_slot[0] += 1
            if slot >= total or time.monotonic() > give_up:
                return
            due = t0 + slot / rate
            wait = due - time.monotonic()
            if wait > 0 and stop.wait(wait):  # pacing, not polling: the slot's start time
                return
            if wait < -1.0:
                with lock:
                    counts["late"] += 1
            url = urls[slot % len(urls)]
            item = id_base + (slot // len(urls)) % key_space
            try:
                if (slot * 7919) % 100 < write_share * 100 or slot < 2 * len(urls):
                    response = session.post(f"{url}/item", json={"id": item, "name": f"soak-{slot}"}, timeout=10)
                    good = response.status_code == 200
                else:
                    response = session.get(f"{url}/item/{id_base + slot % min(key_space, max(1, slot // 2))}",
                                           timeout=10)
                    good = response.status_code in (200, 404)
            except requests.RequestException:
                good = False
            with lock:
                counts["sent"] += 1
                counts["ok" if good else "failed"] += 1

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(max(0.0, give_up + 15 - time.monotonic()))  # one shared deadline (requests time out at 10 s)
    stop.set()
    results.put({**counts, "threads": threads})


def run_steady(urls: list[str], rate: float, seconds: float, *, write_share: float, key_space: int,
               id_base: int, on_tick: Any = None, tick_s: float = 30.0) -> dict[str, Any]:
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    client = spawn.Process(target=steady_client,
                           args=(urls, rate, seconds, write_share, key_space, id_base, results), daemon=True)
    client.start()
    started = time.monotonic()
    figures: dict[str, Any] | None = None
    try:
        deadline = started + seconds + 120
        while figures is None and time.monotonic() < deadline:
            try:
                figures = results.get(timeout=min(tick_s, max(0.1, deadline - time.monotonic())))
            except Exception:  # queue.Empty: a tick
                if on_tick is not None:
                    on_tick(time.monotonic() - started)
        if figures is None:
            raise RuntimeError("steady client did not finish in time")
    finally:
        client.join(timeout=30)
        if client.is_alive():
            client.kill()
            client.join(5)
    return figures


# -- (c) replication lag --------------------------------------------------------------------------
def measure_lag(cloud: LocalCloud, rate: float, seconds: float) -> dict[str, Any]:
    control = cloud.control_url
    delay = get_json(f"{control}/replication/status")["delay_s"]
    since = get_json(f"{control}/events", since=0, kind="replication_applied")["current_seq"]
    url = cloud.description["regions"][0]["api_url"]
    figures = run_steady([url], rate, seconds, write_share=1.0, key_space=10**6, id_base=500_000_000)

    def applied() -> list[dict[str, Any]]:
        return get_json(f"{control}/events", since=since, kind="replication_applied")["events"]

    found = Retrying(stop=stop_after_delay(10 + 2 * delay), wait=wait_fixed(0.2),
                     retry=retry_if_result(lambda ev: len(ev) < figures["ok"]),
                     retry_error_callback=lambda state: state.outcome.result())(applied)
    beyond_ms = [(e["lag_s"] - delay) * 1000 for e in found]
    if not beyond_ms:
        raise RuntimeError("no replication_applied events")
    return {"delay_ms": delay * 1000, "writes": figures["ok"], "applied": len(found), "rate": rate,
            "p50_ms": percentile(beyond_ms, 0.50), "p99_ms": percentile(beyond_ms, 0.99),
            "max_ms": max(beyond_ms), "load": load_note()}


# -- (d) memory soak ------------------------------------------------------------------------------
def measure_soak(minutes: float, rate: float, settle_s: float = 3.0) -> dict[str, Any]:
    with LocalCloud() as cloud:
        proc = cloud_process(cloud)
        time.sleep(settle_s)  # a measurement point, not a poll: let start-up garbage be collected
        rss_start = proc.memory_info().rss
        urls = [r["api_url"] for r in cloud.description["regions"]]
        samples: list[tuple[float, int]] = [(0.0, rss_start)]

        def tick(elapsed: float) -> None:
            rss = proc.memory_info().rss
            samples.append((elapsed, rss))
            print(f"      {elapsed / 60:5.1f} min: RSS {rss / 2**20:7.1f} MiB ({100 * (rss - rss_start) / rss_start:+.1f}%), "
                  f"{load_note()}", flush=True)

        cpu0 = cpu_seconds(proc)
        figures = run_steady(urls, rate, minutes * 60, write_share=0.5, key_space=500, id_base=700_000_000,
                             on_tick=tick, tick_s=30.0 if minutes >= 2 else 10.0)
        cpu = cpu_seconds(proc) - cpu0
        rss_end = proc.memory_info().rss
        events = get_json(f"{cloud.control_url}/events", since=0, kind="none")["current_seq"]
    # after one minute the one-time warm-up (handler modules, first calls' models) is done
    warm = next((rss for t, rss in samples if t >= 55), None)
    return {"minutes": minutes, "rate": rate, "rss_start": rss_start, "rss_end": rss_end,
            "growth_pct": 100 * (rss_end - rss_start) / rss_start,
            "rss_warm": warm, "growth_after_warm_pct": 100 * (rss_end - warm) / warm if warm else None,
            "requests": figures["sent"], "failed": figures["failed"], "late": figures["late"],
            "cpu_ms_per_request": 1000 * cpu / max(1, figures["sent"]), "truth_events": events,
            "load": load_note()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--put-seconds", type=float, default=15.0)
    parser.add_argument("--put-threads", type=int, default=16)
    parser.add_argument("--lag-rate", type=float, default=100.0, help="writes/s while measuring replication lag")
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    parser.add_argument("--soak-minutes", type=float, default=10.0)
    parser.add_argument("--soak-rate", type=float, default=60.0, help="requests/s during the soak (half writes)")
    parser.add_argument("--skip", default="", help=f"comma-separated phases to skip: {','.join(PHASES)}")
    parser.add_argument("--consistency", default="eventual", choices=("eventual", "strong"),
                        help="the put and lag phases' table: eventual (two regions, the default cloud) or strong "
                             "(multi-Region strong consistency on eu-west-1,eu-west-2,eu-west-3)")
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(PHASES):
        parser.error(f"--skip: unknown phase(s) {', '.join(sorted(skip - set(PHASES)))}")
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, {load_note()}", flush=True)
    ok = True

    if "startup" not in skip:
        s = measure_startup(args.startup_runs)
        print(f"(a) start-up, two regions + reference deployment: {s['ready_s']:.2f} s launch-to-ready, median of "
              f"{len(s['runs'])} ({', '.join(f'{r:.2f}' for r in s['runs'])}) (goal < 2 s); {load_note()}")
        print(f"    cloud process CPU to ready {s['cpu_s']:.2f} s (the figure that does not depend on other load)")
        print(f"    in the cloud process (medians): interpreter+imports to main {s['to_main_s']:.2f} s, init "
              f"(botocore, validation) {s['init_s']:.2f} s, imports (moto incl. CloudFormation, components) "
              f"{s['imports_s']:.2f} s, components {s['components_s']:.2f} s, provisioning (5 stacks via "
              f"CloudFormation) {s['provision_s']:.2f} s", flush=True)
        ok &= s["ready_s"] < 2.0

    if not {"put", "lag"} <= skip:
        strong = {"regions": ["eu-west-1", "eu-west-2", "eu-west-3"], "routing": "latency", "consistency": "STRONG"}
        # HTTP shape (tls=False): each region's api_url is its address, so this process needs no DNS of the cloud's
        with LocalCloud(tls=False, **(strong if args.consistency == "strong" else {})) as cloud:  # type: ignore[arg-type]
            print(f"    table: {args.consistency} consistency", flush=True)
            if "put" not in skip:
                p = measure_put(cloud, args.put_seconds, args.put_threads)
                print(f"(b) PutItem through {p['url']}: {p['rate']:.0f} requests/s over {p['elapsed_s']:.1f} s "
                      f"({args.put_threads} client threads, separate process; {p['failures']} failed; p50 "
                      f"{p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms) (goal >= 300/s on 2 cores)")
                print(f"    cloud CPU {p['cpu_ms_per_request']:.2f} ms per request ({p['cloud_cores']:.2f} cores busy; "
                      f"~{1000 / p['cpu_ms_per_request']:.0f} requests/s on one free core); of which the health "
                      f"checkers' own load ({p['idle_cores']:.2f} cores when idle) leaves "
                      f"{p['net_cpu_ms_per_request']:.2f} ms per PutItem; {p['load']}", flush=True)
                ok &= p["failures"] == 0
            if "lag" not in skip:
                lag = measure_lag(cloud, args.lag_rate, args.lag_seconds)
                print(f"(c) replication lag beyond the configured delay ({lag['delay_ms']:.1f} ms), "
                      f"{lag['applied']} applies of {lag['writes']} writes at {lag['rate']:.0f} writes/s: p50 "
                      f"{lag['p50_ms']:.2f} ms, p99 {lag['p99_ms']:.2f} ms, max {lag['max_ms']:.2f} ms "
                      f"(goal < 10 ms); {lag['load']}", flush=True)
                ok &= lag["applied"] >= lag["writes"]

    if "soak" not in skip:
        print(f"(d) memory soak: {args.soak_minutes:g} min at {args.soak_rate:g} requests/s ...", flush=True)
        m = measure_soak(args.soak_minutes, args.soak_rate)
        warm = (f"; from the 1-minute mark ({m['rss_warm'] / 2**20:.1f} MiB) {m['growth_after_warm_pct']:+.1f}%"
                if m["rss_warm"] else "")
        print(f"(d) cloud RSS after start {m['rss_start'] / 2**20:.1f} MiB, after {m['minutes']:g} min of steady "
              f"traffic {m['rss_end'] / 2**20:.1f} MiB: growth {m['growth_pct']:+.1f}% (goal < 10%){warm}")
        print(f"    {m['requests']} requests ({m['failed']} failed, {m['late']} more than 1 s late), "
              f"{m['cpu_ms_per_request']:.2f} ms cloud CPU per request (health checkers included), "
              f"{m['truth_events']} ground-truth events recorded; {m['load']}", flush=True)
        ok &= m["failed"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
