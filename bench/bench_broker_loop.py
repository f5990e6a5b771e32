"""Benchmark: what the broker's heartbeat costs a request. The broker process now runs the `Service` loop
(`services.BrokerService`: poll its request socket, answer at most 64 requests a turn, heartbeat and publish stats
between turns); before, it was `LiveBroker.run` (`Server.run`: poll and answer, nothing else). Both serve the same
journaled SimBroker in their own process on an ipc:// socket; a client sends `bar` requests one at a time (the round
trip a trading service waits for) and pipelined (a burst of 2000 outstanding). First call and warm best-of-N for both.

Run: .venv/bin/python bench/bench_broker_loop.py
"""
import multiprocessing as mp, os, signal, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
from timing import best_time
from regime_nb.bus import AsyncClient, Client
from regime_nb.live import LiveConfig

N_RT, N_BURST, REPEAT = 2000, 2000, 5

def old_loop(cfg_path):
    "The broker process as it was: LiveBroker.run over the journaled SimBroker, no heartbeat."
    from regime_nb.broker import JournaledBroker, LiveBroker, SimBroker
    cfg = LiveConfig.load(cfg_path)
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
    sim = SimBroker(fill_mode="bar_close", fee_bps=cfg.costs_bps, init_cash=cfg.init_cash)
    srv = LiveBroker(JournaledBroker(sim, Path(cfg.run_dir)/"broker.journal.jsonl"), cfg.endpoints["broker"])
    try: srv.run(lambda: stop["flag"])
    finally: srv.close()

def start(kind, d):
    cfg = LiveConfig(run_dir=f"{d}/{kind}", store=f"{d}/s.sqlite", registry=f"{d}/reg")
    path = cfg.save()
    if kind == "service": p = subprocess.Popen([sys.executable, "-m", "regime_nb.supervisor", "broker", str(path)])
    else: p = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from bench_broker_loop import old_loop; old_loop({str(path)!r})"])
    return cfg, p

def bar(ts): return dict(symbol="X", open=100.0, high=101.0, low=99.0, close=100.5, ts_ns=int(ts), since_seq=0)

def measure(cfg):
    cli = Client(cfg.endpoints["broker"], timeout_ms=30_000, retries=0)
    t0 = time.perf_counter(); cli.request("bar", bar(1)); first = time.perf_counter() - t0  # waits for the process to come up
    ts = iter(range(2, 10**9))
    def round_trips():
        lat = []
        for _ in range(N_RT):
            t = time.perf_counter_ns(); cli.request("bar", bar(next(ts))); lat.append(time.perf_counter_ns() - t)
        return np.percentile(lat, [50, 99]) / 1e3
    rt_best, (p50, p99) = best_time(round_trips, REPEAT)
    ac = AsyncClient(cfg.endpoints["broker"], timeout_ms=30_000)
    def burst():
        for _ in range(N_BURST): ac.send("bar", bar(next(ts)))
        got = 0
        while got < N_BURST: got += len(ac.replies()); time.sleep(0)
    burst_best, _ = best_time(burst, REPEAT)
    cli.close(); ac.close()
    return dict(first_s=first, rt_p50_us=p50, rt_p99_us=p99, rt_best_us=rt_best / N_RT * 1e6, burst_us=burst_best / N_BURST * 1e6)

if __name__ == "__main__":
    res = {}
    with tempfile.TemporaryDirectory() as d:
        for kind in ("old", "service"):
            cfg, p = start(kind, d)
            try: res[kind] = measure(cfg)
            finally: p.terminate(); p.wait(10)
    for k, r in res.items():
        print(f"{k:8s} first request {r['first_s']:.2f} s (process start), round trip p50 {r['rt_p50_us']:.0f} us p99 {r['rt_p99_us']:.0f} us "
              f"(best of {REPEAT} x {N_RT}: {r['rt_best_us']:.0f} us/request), pipelined burst {r['burst_us']:.1f} us/request")
    o, s = res["old"], res["service"]
    print(f"service / old: round trip p50 {s['rt_p50_us'] / o['rt_p50_us']:.2f}x, p99 {s['rt_p99_us'] / o['rt_p99_us']:.2f}x, burst {s['burst_us'] / o['burst_us']:.2f}x")
