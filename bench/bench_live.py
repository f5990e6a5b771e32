"""Benchmark: end-to-end latency and throughput of the live loop (five processes over ZeroMQ, SQLite stores).

Latency is measured from the feed publishing a bar to (a) the order reaching the broker (stamped by the broker on receipt)
and (b) the trading service finishing the bar's decision, with the feed paced at 1k and 10k bars/s. The sustained rate is
the trading service's rate over a replay as fast as possible, with zero bars lost. Both durability modes are run: "full"
fsyncs each order's intent before sending it, "process" survives any process crash but not a power cut.

Three references are measured in the same run: the same per-bar work in one process with no sockets and no store (the
alternative without services); the transport floor, a bare pyzmq PUB/SUB message relayed between processes over the
loop's default ipc:// transport, at 1k and 10k messages/s, through the two hops a bar takes to the broker (feed -> trading
-> broker) and the four an order takes, its regime first (feed -> features -> prediction -> trading -> broker); and the
disk's durable-write latency (a small append and fdatasync in the run folder), which an order pays on top with
durability="full". The four hops and the write together are a floor under feed -> order that no work can go below.
The CPU each bare relay process uses per message (its recv and send, libzmq's IO thread included) is a floor under the
loop's CPU per bar when it is paced one bar per message: at 10k bars/s two cores give 200 us per bar.

Run: .venv/bin/python bench/bench_live.py
"""
import multiprocessing as mp, os, shutil, tempfile, threading, time
from pathlib import Path
import numpy as np, zmq
from regime_nb.backtest import engine_params, engine_state, engine_step_nb
from regime_nb.simulate import simulate_regimes
from regime_nb.features import FeatureEngine, FeatureSpec, compute_features
from regime_nb.supervisor import LiveConfig, Supervisor
from regime_nb.regimes import GMMRegime
from regime_nb.registry import Registry
from regime_nb.strategies import RegimeExposure

N_WARM = 2_000
PERMISSIVE = dict(var_limit=None, max_position=10, stale_after_s=60, max_orders_per_min=10**9, max_drawdown=0.99)
RUNS = [(1_000.0, 10_000, "full"), (1_000.0, 10_000, "process"), (10_000.0, 50_000, "full"), (10_000.0, 50_000, "process"),
        (0.0, 300_000, "full"), (0.0, 300_000, "process")]

def in_process(bars, model, first):
    "The same per-bar work in one process: the alternative without services."
    fe = FeatureEngine(FeatureSpec.default()); fe.warm(bars.iloc[:first])
    sc, st = model.online(), RegimeExposure((1.0, 0.0)).stepper()
    state, params, trade, target = engine_state(1.0), engine_params(costs_bps=1.0), np.zeros(8), np.nan
    def run(rows):
        nonlocal target
        for ts, r in zip(rows.index, rows[["open", "high", "low", "close", "volume"]].to_numpy()):
            x = fe.update(dict(ts=ts.value, open=r[0], high=r[1], low=r[2], close=r[3], volume=r[4]))
            p = sc.update(x)
            engine_step_nb(state, params, r[0], r[3], target, 0.0, trade)
            target = st.update({"regime_0": p[0], "regime_1": p[1]})
    run(bars.iloc[first:first + 100])  # compile (or load from numba's cache) outside the timing
    rows = bars.iloc[first + 100:]
    t0 = time.perf_counter()
    run(rows)
    return len(rows) / (time.perf_counter() - t0)

def cpu_s(pid) -> float:
    "User + system CPU seconds a process has used (Linux /proc)."
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def run_measured(cfg, n):
    "Run the loop; return the trading stats and each service's CPU microseconds per bar between 10% and 90% of the replay."
    sup, res = Supervisor(cfg, out=lambda _: None), {}
    th = threading.Thread(target=lambda: res.update(sup.run(600)), daemon=True); th.start()
    def at(frac):
        while th.is_alive() and sup.stats.get("trading", {}).get("bars", 0) < frac * n: time.sleep(0.01)
        try: return sup.stats["trading"]["bars"], {k: cpu_s(p.pid) for k, p in sup.procs.items()}
        except (KeyError, FileNotFoundError, ProcessLookupError): return None
    a, b = at(0.1), at(0.9)
    th.join()
    cpu = {k: (b[1][k] - a[1][k]) / (b[0] - a[0]) * 1e6 for k in a[1]} if a and b and b[0] > a[0] else {}
    return res["trading"], cpu

def _relay(src, dst):
    ctx = zmq.Context(); s = ctx.socket(zmq.SUB); s.connect(src); s.setsockopt(zmq.SUBSCRIBE, b""); p = ctx.socket(zmq.PUB); p.bind(dst)
    while True:
        m = s.recv()
        p.send(m)
        if m == b"stop": return

def transport_floor(folder, rate=1_000.0, n=3_000, hops=4):
    "p50/p99 (us) of a bare message through `hops` PUB/SUB hops between processes over ipc://, paced at `rate`; and the CPU (us) a relay process uses per message."
    eps = [f"ipc://{folder}/floor{hops}-{i}.sock" for i in range(hops + 1)]
    spawn = mp.get_context("spawn")  # fresh processes: a fork would inherit this process's zmq context and the loop's state
    procs = [spawn.Process(target=_relay, args=(eps[i], eps[i + 1]), daemon=True) for i in range(hops - 1)]
    for p in procs: p.start()
    ctx = zmq.Context(); pub = ctx.socket(zmq.PUB); pub.bind(eps[0]); sub = ctx.socket(zmq.SUB); sub.connect(eps[hops - 1]); sub.setsockopt(zmq.SUBSCRIBE, b"")
    deadline = time.time() + 60
    while time.time() < deadline:  # until a message gets through every hop
        pub.send(b"probe")
        if sub.poll(100): break
    while sub.poll(200): sub.recv()
    lat = []
    for i in range(n + 100):
        if i == 100: cpu0 = [cpu_s(p.pid) for p in procs]
        t = time.perf_counter_ns(); pub.send(b"x"); sub.recv()
        if i >= 100: lat.append(time.perf_counter_ns() - t)
        time.sleep(max(0.0, 1 / rate - (time.perf_counter_ns() - t) / 1e9))
    relay_cpu_us = np.mean([cpu_s(p.pid) - c for p, c in zip(procs, cpu0)]) / n * 1e6 if procs else np.nan  # its recv and send, IO thread included
    pub.send(b"stop")
    for p in procs: p.join(5)
    return np.percentile(lat, 50) / 1e3, np.percentile(lat, 99) / 1e3, relay_cpu_us

def durable_write(folder, n=300):
    "p50/p99 (us) of appending 200 bytes and fdatasync-ing them, what durability='full' pays per order."
    import os
    fd, lat = os.open(Path(folder)/"fsync.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), []
    for _ in range(n):
        t = time.perf_counter_ns(); os.write(fd, b"x" * 200); os.fdatasync(fd); lat.append(time.perf_counter_ns() - t)
        time.sleep(0.002)
    os.close(fd)
    return np.percentile(lat, 50) / 1e3, np.percentile(lat, 99) / 1e3

if __name__ == "__main__":
    d = Path(tempfile.mkdtemp())
    n_max = max(n for _, n, _ in RUNS)
    bars = simulate_regimes(N_WARM + n_max, freq="1min", seed=0).drop(columns="regime")
    model = GMMRegime(2).fit(compute_features(bars.iloc[:N_WARM]))
    with Registry(d/"reg") as reg: reg.promote(reg.register(model, spec=FeatureSpec.default()), "champion", reason="bench")
    print("live loop on simulated one-minute bars, 5 processes on 2 cores, GMM(2) + RegimeExposure(1, 0):")
    max_rate = 0.0
    for i, (speed, n, durability) in enumerate(RUNS):
        run = d/f"run{i}"; run.mkdir()
        path = run/"bars.parquet"; bars.iloc[:N_WARM + n].to_parquet(path)
        cfg = LiveConfig(run_dir=str(run), store=str(run/"store.sqlite"), registry=str(d/"reg"), data=str(path), symbol="sim", start=str(bars.index[N_WARM]),
                         speed=speed, costs_bps=1.0, risk=PERMISSIVE, durability=durability)
        s, cpu = run_measured(cfg, n)
        label = f"paced at {speed:,.0f} bars/s" if speed else "as fast as possible"
        print(f"  {label}, durability={durability}: {s['bars']:,} of {n:,} bars at {s['bars_per_s'] or 0:,.0f} bars/s, gaps {s['gaps']}; "
              f"feed -> order at broker p50 {s['p50_us'] or 0:,.0f} us, p99 {s['p99_us'] or 0:,.0f} us ({s.get('orders', 0):,} orders); "
              f"feed -> decision p50 {s['bar_p50_us'] or 0:,.0f} us, p99 {s['bar_p99_us'] or 0:,.0f} us")
        if cpu: print("    CPU per bar (us): " + ", ".join(f"{k} {v:,.1f}" for k, v in cpu.items()) + f"; all {sum(cpu.values()):,.1f} (2 cores give {2e6 / (speed or s['bars_per_s'] or 1):,.0f})")
        if not speed and s["bars"] == n: max_rate = max(max_rate, s["bars_per_s"] or 0)
    floor = {}
    for rate in (1_000.0, 10_000.0):
        for hops, what in ((2, "a bar: feed -> trading -> broker"), (4, "its regime, then the order: feed -> features -> prediction -> trading -> broker")):
            f50, f99, relay_cpu = floor[rate, hops] = transport_floor(d, rate=rate, n=3_000 if rate < 5_000 else 20_000, hops=hops)
            print(f"  transport floor, a bare message through {hops} ipc PUB/SUB hops ({what}) at {rate:,.0f} msgs/s: p50 {f50:,.0f} us, p99 {f99:,.0f} us; "
                  f"each bare relay process (recv + send) used {relay_cpu:,.1f} us of CPU per message")
    relay10k = np.mean([floor[10_000.0, h][2] for h in (2, 4)])
    print(f"  so at 10,000 bars/s, one message per bar: features and prediction each relay it, and the feed's send with trading's two receipts (bar and regime) "
          f"are at least a third relay's worth: at least 3 x {relay10k:,.1f} = {3 * relay10k:,.0f} us of CPU per bar before any work, of the 200 us two cores give")
    w50, w99 = durable_write(d)
    print(f"  durable write on this disk (200-byte append + fdatasync): p50 {w50:,.0f} us, p99 {w99:,.0f} us")
    print(f"  so at 10,000 bars/s an order written durably before it is sent (durability=full) reaches the broker after the 4 hops and the write: "
          f"their medians add up to {floor[10_000.0, 4][0] + w50:,.0f} us before any work is done (target: p50 250 us)")
    shutil.rmtree(d, ignore_errors=True)
    alt = in_process(bars.iloc[:N_WARM + 30_000], model, N_WARM)
    print(f"  same per-bar work in one process without sockets or store: {alt:,.0f} bars/s; ratio to the live loop's best sustained rate {alt / max_rate:.1f}x")
