"""Traffic client figures: sustained requests/s with full recording, recording overhead, metrics time.

Target (default `loopback`): a child process serving two regions' HTTP/1.1 keep-alive endpoints on
two loopback addresses (one port) and a real dnslib DNS server answering the global domain with a
CNAME -> A (TTL 60), so the client does real DNS (TTL cache, scaled by --time-scale) and real HTTP,
and its CPU does not share a GIL with the servers. `--target local` uses the embedded local cloud
(gameday.localcloud.process.launcher.LocalCloud): then the figure is bounded by the cloud (moto + in-process Lambda).

    python -m bench.traffic [--target loopback|local] [--seconds 5] [--rate 300] [--threads 16]

Prints:
 1. requests/s sustained with full recording: at --rate (does it hold?) and at saturation;
 2. recording overhead per request: the cost of one event (dict + append), and client CPU per
    request with and without recording at the same rate;
 3. time to compute every metric (gameday.measure.metrics.summarize) over 100,000 synthetic events.
Bounded: each phase runs --seconds; everything started is stopped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gameday.load.traffic import Traffic, make_event
from gameday.measure import metrics

ROOT = Path(__file__).resolve().parent.parent

DOMAIN = "api.gameday.test"
REGIONS = ("eu-west-1", "us-east-1")


# -- loopback target (child process) ------------------------------------------------------------
def _serve_loopback(conn: Any) -> None:
    from dnslib import CNAME, QTYPE, RCODE, RR, A
    from dnslib.server import BaseResolver, DNSLogger, DNSServer

    base = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
    addresses = {REGIONS[0]: f"{base}.21", REGIONS[1]: f"{base}.22"}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        region = ""

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-gameday-region", self.region)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._answer(json.dumps({"id": json.loads(body)["id"], "region": self.region}).encode())

        def do_GET(self) -> None:  # noqa: N802
            self._answer(b'{"id": 1}')

    servers, port = [], 0
    for name, address in addresses.items():
        handler = type(f"H{len(servers)}", (Handler,), {"region": name})
        httpd = ThreadingHTTPServer((address, port), handler)
        httpd.daemon_threads = True
        port = httpd.server_address[1]
        servers.append(httpd)

    class Zone(BaseResolver):
        def resolve(self, request: Any, handler: Any) -> Any:
            reply = request.reply()
            qname = str(request.q.qname).rstrip(".").lower()
            target = f"abc.execute-api.{REGIONS[0]}.amazonaws.com"
            if qname == DOMAIN:
                reply.add_answer(RR(DOMAIN, QTYPE.CNAME, rdata=CNAME(target), ttl=60))
                reply.add_answer(RR(target, QTYPE.A, rdata=A(addresses[REGIONS[0]]), ttl=60))
            else:
                reply.header.rcode = RCODE.NXDOMAIN
            return reply

    dns = DNSServer(Zone(), address="127.0.0.1", port=0, logger=DNSLogger(logf=lambda *_: None))
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
               for s in [*servers, dns.server]]
    for thread in threads:
        thread.start()
    conn.send({"global_url": f"http://{DOMAIN}:{port}", "dns_resolver": f"127.0.0.1:{dns.server.server_address[1]}"})
    conn.recv()  # any message (or EOF) stops the target
    for server in [*servers, dns.server]:
        server.shutdown()
        server.server_close()


class LoopbackTarget:
    def __enter__(self) -> dict[str, Any]:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve_loopback, args=(child,), daemon=True)
        self._proc.start()
        if not self._conn.poll(30):
            self.__exit__()
            raise RuntimeError("loopback target did not start")
        return self._conn.recv()

    def __exit__(self, *exc: Any) -> None:
        try:
            self._conn.send("stop")
        except (OSError, BrokenPipeError):
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)


class LocalCloudTarget:
    def __enter__(self) -> dict[str, Any]:
        from gameday.localcloud.process.launcher import LocalCloud

        self._cloud = LocalCloud().start()
        return self._cloud.description

    def __exit__(self, *exc: Any) -> None:
        self._cloud.close()


# -- phases ----------------------------------------------------------------------------------------
def run_traffic(target: dict[str, Any], *, rate: float, seconds: float, threads: int, record: bool,
                time_scale: float) -> dict[str, Any]:
    traffic = Traffic.for_url(target["global_url"], target["dns_resolver"], time_scale=time_scale, rate=rate,
                              duration_s=seconds, threads=threads, record=record, write_ratio=0.5,
                              timeout=(2.0, 10.0))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    traffic.start()
    traffic.wait(seconds + 30)
    traffic.stop()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    p = traffic.progress()
    events = traffic.events()
    latencies = sorted(e["latency_s"] for e in events)
    return {
        "target_rate": rate, "sent": p.sent, "ok": p.ok, "failed": p.failed, "skipped": p.skipped_slots,
        "achieved_rate": p.sent / seconds, "wall_s": wall, "cpu_per_request_us": cpu / max(1, p.sent) * 1e6,
        "recorded": len(events), "acked": p.acked_writes,
        "latency_p50_ms": metrics.percentile(latencies, 50) * 1e3 if latencies else None,
        "latency_p99_ms": metrics.percentile(latencies, 99) * 1e3 if latencies else None,
    }


def record_cost_us(n: int = 200_000) -> float:
    """The recording step alone: build one event and append it, per request."""
    events: list[dict[str, Any]] = []
    started = time.perf_counter()
    for i in range(n):
        events.append(make_event(1.0, 1.001, "put", True, 200, 0.001, "eu-west-1", i, None, "127.0.0.11"))
    return (time.perf_counter() - started) / n * 1e6


def synthetic_events(n: int = 100_000) -> tuple[list[dict[str, Any]], dict[str, float], list[int], dict, list]:
    rng = random.Random(1)
    t0, events = 1_700_000_000.0, []
    for i in range(n):
        t = t0 + i / 300
        failing = 100 <= t - t0 < 130
        ok = (not failing) or rng.random() < 0.1
        region = REGIONS[0] if (t - t0 < 120 or t - t0 > 260) else REGIONS[1]
        latency = rng.random() / 40
        events.append(make_event(t, t + latency, "put" if i % 2 else "get", ok, 200 if ok else 500, latency,
                                 region, i, None if ok else "HTTP 500", None))
    marks = {"fault": t0 + 95, "detected": t0 + 110, "dns_shift": t0 + 120, "restore": t0 + 240,
             "recovered": t0 + 260}
    acked = [e["item_id"] for e in events if e["ok"] and e["op"] == "put"]
    present = {REGIONS[0]: set(acked), REGIONS[1]: set(acked[:-3])}
    lag = [(REGIONS[0], REGIONS[1], e["t_end"], e["t_end"] + rng.random() / 2) for e in events if e["op"] == "put"]
    return events, marks, acked, present, lag


def time_metrics(repeats: int = 3) -> dict[str, float]:
    events, marks, acked, present, lag = synthetic_events()
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        figures = metrics.summarize(events, marks, acked_ids=acked, present=present, lag_samples=lag,
                                    restored_region=REGIONS[0], window_s=1.0)
        metrics.check_slos(figures, {"client_outage_s": 60, "rpo_lost_writes": 0})
        best_wall = min(best_wall, time.perf_counter() - wall0)
        best_cpu = min(best_cpu, time.process_time() - cpu0)
    table = metrics.EventTable.from_events(events)
    wall0 = time.perf_counter()
    metrics.summarize(table, marks, acked_ids=acked, present=present, lag_samples=lag,
                      restored_region=REGIONS[0], window_s=1.0)
    on_table = time.perf_counter() - wall0
    return {"events": len(events), "wall_s": best_wall, "cpu_s": best_cpu, "on_prebuilt_table_s": on_table,
            "rpo_lost_writes": figures["rpo_lost_writes"], "client_outage_s": figures["client_outage_s"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("loopback", "local"), default="loopback")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--saturation-rate", type=float, default=3000.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--time-scale", type=float, default=0.01)
    args = parser.parse_args(argv)

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    target_cm = LoopbackTarget() if args.target == "loopback" else LocalCloudTarget()
    with target_cm as target:
        print(f"target: {args.target} ({target['global_url']}, DNS {target['dns_resolver']}, TTL cache "
              f"60 s x {args.time_scale})")
        kw = {"seconds": args.seconds, "threads": args.threads, "time_scale": args.time_scale}
        at_rate = run_traffic(target, rate=args.rate, record=True, **kw)
        saturated = run_traffic(target, rate=args.saturation_rate, record=True, **kw)
        unrecorded = run_traffic(target, rate=args.rate, record=False, **kw)

    print("\n1. requests/s with full recording (every request an event)")
    for label, r in (("at target", at_rate), ("saturation", saturated)):
        print(f"   {label:10s}: asked {r['target_rate']:.0f}/s -> sustained {r['achieved_rate']:.0f}/s "
              f"({r['sent']} sent, {r['failed']} failed, {r['skipped']} slots skipped, {r['recorded']} recorded, "
              f"{r['acked']} acked; latency p50 {r['latency_p50_ms']:.2f} ms, p99 {r['latency_p99_ms']:.2f} ms)")
    print("\n2. recording overhead per request")
    print(f"   recording step alone (event dict + append): {record_cost_us():.2f} us")
    diff = at_rate["cpu_per_request_us"] - unrecorded["cpu_per_request_us"]
    print(f"   client CPU per request at {args.rate:.0f}/s: {at_rate['cpu_per_request_us']:.0f} us recorded, "
          f"{unrecorded['cpu_per_request_us']:.0f} us unrecorded (difference {diff:+.0f} us, noise included)")
    m = time_metrics()
    print("\n3. every metric over 100,000 synthetic events (summarize + check_slos)")
    print(f"   {m['wall_s'] * 1e3:.0f} ms wall, {m['cpu_s'] * 1e3:.0f} ms CPU (best of 3); "
          f"{m['on_prebuilt_table_s'] * 1e3:.0f} ms on a prebuilt EventTable "
          f"(rpo_lost_writes={m['rpo_lost_writes']}, client_outage_s={m['client_outage_s']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
