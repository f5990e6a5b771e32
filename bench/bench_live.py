"""Benchmark: end-to-end latency and throughput of the live loop (separate processes over ZeroMQ, SQLite store).

Latency is measured from the feed publishing a bar to (a) the order reaching the broker and (b) the trading service
finishing the bar's decision, at paced rates, and the highest sustained rate is the rate at which the trading service
processed a full replay with zero loss. The obvious alternative for comparison is the same per-bar work (feature update,
online regime scoring, strategy step, engine step) in one process with no sockets and no store.

Run: .venv/bin/python bench/bench_live.py
"""
import shutil, tempfile, time
from pathlib import Path
import numpy as np
from regime_nb.backtest import engine_params, engine_state, engine_step_nb
from regime_nb.data import simulate_regimes
from regime_nb.features import FeatureEngine, FeatureSpec, compute_features
from regime_nb.live import LiveConfig, Supervisor
from regime_nb.regimes import GMMRegime
from regime_nb.registry import Registry
from regime_nb.strategies import RegimeExposure

N_WARM, N_LIVE = 2_000, 6_000
PERMISSIVE = dict(var_limit=None, max_position=10, stale_after_s=60, max_orders_per_min=10**9, max_drawdown=0.99)

def in_process(bars, model, first):
    "The same per-bar work in one process: the alternative without services."
    fe = FeatureEngine(FeatureSpec.default()); fe.warm(bars.iloc[:first])
    sc, st = model.online(), RegimeExposure((1.0, 0.0)).stepper()
    state, params, trade, target = engine_state(1.0), engine_params(costs_bps=1.0), np.zeros(8), np.nan
    rows = bars.iloc[first:]
    t0 = time.perf_counter()
    for ts, r in zip(rows.index, rows[["open", "high", "low", "close", "volume"]].to_numpy()):
        x = fe.update(dict(ts=ts.value, open=r[0], high=r[1], low=r[2], close=r[3], volume=r[4]))
        p = sc.update(x)
        engine_step_nb(state, params, r[0], r[3], target, 0.0, trade)
        target = st.update({"regime_0": p[0], "regime_1": p[1]})
    return len(rows) / (time.perf_counter() - t0)

if __name__ == "__main__":
    d = Path(tempfile.mkdtemp())
    bars = simulate_regimes(N_WARM + N_LIVE, freq="1min", seed=0).drop(columns="regime")
    path = d/"bars.parquet"; bars.to_parquet(path)
    model = GMMRegime(2).fit(compute_features(bars.iloc[:N_WARM]))
    with Registry(d/"reg") as reg: reg.promote(reg.register(model, spec=FeatureSpec.default()), "champion", reason="bench")
    start = str(bars.index[N_WARM])
    print(f"live loop, {N_LIVE:,} one-minute simulated bars, 5 processes on 2 cores:")
    for speed in (100.0, 300.0, 0.0):
        run = d/f"run{int(speed)}"
        cfg = LiveConfig(run_dir=str(run), store=str(run/"store.sqlite"), registry=str(d/"reg"), data=str(path), symbol="sim", start=start,
                         speed=speed, costs_bps=1.0, risk=PERMISSIVE)
        s = Supervisor(cfg, out=lambda _: None).run(300)["trading"]
        label = f"paced at {speed:.0f} bars/s" if speed else "as fast as possible"
        print(f"  {label}: processed {s['bars']:,} of {N_LIVE:,} bars at {s['bars_per_s'] or 0:,.0f} bars/s; gaps {s['gaps']}; "
              f"feed -> order p50 {s['p50_us'] or 0:,.0f} us, p99 {s['p99_us'] or 0:,.0f} us ({s.get('orders', 0)} orders); "
              f"feed -> decision p50 {s['bar_p50_us'] or 0:,.0f} us, p99 {s['bar_p99_us'] or 0:,.0f} us")
        if not speed: max_rate = s["bars_per_s"] or 0
    alt = in_process(bars, model, N_WARM)
    print(f"  same per-bar work in one process without sockets or store: {alt:,.0f} bars/s; ratio to the live loop {alt / max_rate:.0f}x")
    shutil.rmtree(d, ignore_errors=True)
