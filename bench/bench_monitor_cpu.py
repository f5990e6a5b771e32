"""The monitor's CPU cost during a 1,000 bars/s replay: a writer process appends bars and predictions to the market store and decisions and
equity to the run's store at 1,000 bars/s (regime_nb's store writer, the live loop's schema), while the monitor (`run_monitor`, polling every
`[monitor] poll_s`) watches them; CPU seconds of the monitor's process per 1,000 bars, against the obvious alternative measured the same way in
the same run: a monitor that re-reads the whole tables and recomputes the scores on every poll (batch features, `np.histogram` PSI, scipy's
`ks_2samp`, `regime_stats`). Both record the same scores; at the end both are computed on the same store and compared.

    python bench/bench_monitor_cpu.py [--seconds 30] [--rate 1000]
"""
import argparse, json, multiprocessing as mp, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd

SYM = "sp500"

def make_registry(d) -> tuple:
    "A GMM(2) on the S&P 500 up to 2014, registered with its training profile; the bars and probabilities the writer replays (2015 on)."
    from regime_nb.data import load_dataset
    from regime_nb.features import FeatureSpec, compute_features
    from regime_nb.regimes import GMMRegime
    from regime_nb.registry import Registry
    sp = load_dataset("sp500")
    m = GMMRegime(2).fit(compute_features(sp).loc[:"2014"])
    with Registry(f"{d}/reg") as reg:
        v = reg.register(m, spec=FeatureSpec.default(), data=sp.loc[:"2014"], symbol=SYM); reg.promote(v, "champion", reason="bench")
    live = sp.loc["2015":]
    return v, live[["open", "high", "low", "close", "volume"]].to_numpy(), m.predict_proba(compute_features(sp)).loc["2015":].to_numpy()

def writer(d, version, ohlcv, P, rate, seconds, go, out):
    "Append `rate` bars a second for `seconds`: bars and predictions (market store), one decision and one equity row per bar (run store)."
    from regime_nb.records import RecordWriter
    from regime_nb.store import Store
    mk, st = Store(f"{d}/run.market.sqlite", synchronous="NORMAL"), Store(f"{d}/run.sqlite", synchronous="NORMAL")
    w, step, n = RecordWriter(st, every_s=0.05), 0.05, len(ohlcv)
    rets = ohlcv / np.r_[ohlcv[:1], ohlcv[:-1]][:, [3, 3, 3, 3, 4]]  # each bar relative to the previous close (volume as is)
    close, i, t0 = 100.0, 0, None
    go.wait(); t0 = time.perf_counter()
    while (now := time.perf_counter() - t0) < seconds:
        k = int(now * rate) - i  # bars due by now
        if k > 0:
            j = np.arange(i, i + k) % n
            rows = rets[j].copy(); c = close * np.cumprod(rows[:, 3]); rows[:, :4] *= np.r_[close, c[:-1]][:, None]; rows[:, 4] = ohlcv[j, 4]; close = c[-1]
            ts = (pd.Timestamp("2015-01-02", tz="UTC").value + (np.arange(i, i + k) * 60 * 10**9)).astype("int64")  # minute bars
            mk.record_bar_block(SYM, ts, rows); mk.record_prediction_block(SYM, ts, P[j], version, latency_us=150.0)
            for t, p in zip(ts, P[j]): w.add("record_decision", SYM, int(t), float(p[0] > 0.5), bool(p[0] > 0.2), [] if p[0] > 0.2 else ["confidence: low"], version, int(p.argmax()))
            for q, t in enumerate(ts): w.add_equity((int(t), 1.0, 1.0 + 1e-4 * ((i + q) % 50), {SYM: 0.5}, 0.0))
            i += k
        time.sleep(step)
    w.close(); out.put(dict(bars=i, seconds=time.perf_counter() - t0))

def naive_scores(mk, st, prof, spec, c) -> tuple:
    "Every poll from scratch: all bars, predictions, decisions and equity rows read, features in batch, PSI, KS and regime figures recomputed."
    from scipy.stats import ks_2samp
    from regime_nb.features import compute_features
    from regime_nb.monitor import level_of, psi_nb, worst
    from regime_nb.registry import regime_stats
    bars = mk.query_df("SELECT * FROM bars WHERE symbol = ? ORDER BY ts_ns", (SYM,))
    preds = mk.query("SELECT probs FROM predictions WHERE symbol = ? ORDER BY ts_ns", (SYM,))
    st.query("SELECT id, symbol, allowed, reasons FROM decisions ORDER BY id"); st.query("SELECT rowid, book, ts_ns, equity, drawdown FROM equity ORDER BY rowid")
    W = int(c["drift_window"]); rows = []
    F = compute_features(bars.set_index(pd.to_datetime(bars.ts_ns, utc=True)), spec).to_numpy()
    for f, col in enumerate(prof["columns"]):
        live, train = F[:, f][np.isfinite(F[:, f])][-W:], np.asarray(prof["sample"][f])
        edges = np.r_[-np.inf, np.unique(np.quantile(train, np.arange(1, 10) / 10)), np.inf]
        e, a = np.histogram(train, edges)[0] / len(train), np.histogram(live, edges)[0] / len(live)
        psi, ks = float(psi_nb(a, e)), float(ks_2samp(train, live).statistic)
        lv = worst(level_of(psi, c["psi_warning"], c["psi_critical"]), level_of(ks, c["ks_warning"], c["ks_critical"])) if len(live) >= c["drift_min_bars"] else None
        rows.append(dict(kind="feature_drift", name=col, psi=psi, ks=ks, n=len(live), level=lv))
    g = regime_stats(np.array([json.loads(p["probs"]) for p in preds[-W:]]))
    rows.append(dict(kind="prediction_drift", name="regime_frequencies", psi=float(psi_nb(np.asarray(g["freq"]), np.asarray(prof["regimes"]["freq"]))), n=g["n"]))
    return rows, int(bars.ts_ns.iloc[-1]) if len(bars) else None

def monitor(d, kind, seconds, go, out):
    "The monitor's process: `run_monitor` (incremental) or the re-reading one, polling every poll_s; its CPU seconds and the bars it saw."
    import logging; logging.disable(logging.WARNING)  # the replayed years drift against 2014's profile: the alerts are not the point here
    from regime_nb.core import load_settings
    from regime_nb.monitor import run_monitor
    from regime_nb.registry import Registry
    from regime_nb.store import Store
    s = load_settings(env={}); c = s["monitor"]
    with Registry(f"{d}/reg") as reg: meta = reg.show(reg.resolve("champion"))
    prof, spec = meta["profile"], meta["feature_spec"]
    go.wait(); time.sleep(0.2)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if kind == "incremental":
        mon = run_monitor(f"{d}/run.sqlite", registry=f"{d}/reg", settings=s, port=0, duration_s=seconds)
        bars, polls = mon.totals.get(("bars", SYM, ""), 0), mon.polls
    else:
        mk, st, polls, bars, last = Store(f"{d}/run.market.sqlite", synchronous="NORMAL"), Store(f"{d}/run.sqlite", synchronous="NORMAL"), 0, 0, None
        while time.perf_counter() - wall0 < seconds:
            t = time.perf_counter()
            rows, last = naive_scores(mk, st, prof, spec, c)
            st.record_scores(SYM, rows, model_version=meta["version"], bar_ns=last); polls += 1
            time.sleep(max(0.0, c["poll_s"] - (time.perf_counter() - t)))
        bars = mk.query_one("SELECT COUNT(*) FROM bars WHERE symbol = ?", (SYM,))[0]
    out.put(dict(kind=kind, cpu_s=time.process_time() - cpu0, wall_s=time.perf_counter() - wall0, bars=bars, polls=polls))

def compare(d) -> float:
    "Largest difference between the incremental monitor's scores and the re-reading monitor's, on the same finished store."
    import logging; logging.disable(logging.WARNING)
    from regime_nb.core import load_settings
    from regime_nb.monitor import Monitor
    from regime_nb.registry import Registry
    from regime_nb.store import Store
    s = load_settings(env={})
    with Registry(f"{d}/reg") as reg: meta = reg.show(reg.resolve("champion"))
    mon = Monitor(f"{d}/run.sqlite", registry=f"{d}/reg", settings=s); mon.poll()
    inc = {r["name"]: r for r in mon.book_scores(mon.books[SYM])}
    naive, _ = naive_scores(Store(f"{d}/run.market.sqlite"), Store(f"{d}/run.sqlite"), meta["profile"], meta["feature_spec"], s["monitor"])
    return max(abs(inc[r["name"]][k] - r[k]) for r in naive for k in ("psi", "ks") if k in r)

def run(kind, version, ohlcv, P, rate, seconds) -> dict:
    d = tempfile.mkdtemp(); import shutil; shutil.copytree(REG, f"{d}/reg")
    ctx = mp.get_context("spawn"); go, out = ctx.Event(), ctx.Queue()
    w = ctx.Process(target=writer, args=(d, version, ohlcv, P, rate, seconds, go, out)); m = ctx.Process(target=monitor, args=(d, kind, seconds, go, out))
    w.start(); m.start(); time.sleep(3.0); go.set()  # both processes imported and opened their stores
    res = [out.get(timeout=seconds + 120) for _ in range(2)]; w.join(); m.join()
    r = next(x for x in res if "kind" in x); r["written"], r["writer_s"] = next(x for x in res if "kind" not in x).values()
    r["max_diff"] = compare(d)
    return r

def main():
    global REG
    ap = argparse.ArgumentParser(); ap.add_argument("--seconds", type=float, default=30.0); ap.add_argument("--rate", type=float, default=1000.0)
    a = ap.parse_args()
    d = tempfile.mkdtemp(); version, ohlcv, P = make_registry(d); REG = f"{d}/reg"
    res = {k: run(k, version, ohlcv, P, a.rate, a.seconds) for k in ("incremental", "re-reading")}
    for k, r in res.items():
        print(f"{k:12s} monitor: {r['cpu_s']:.2f} CPU s over {r['wall_s']:.1f} s, {r['polls']} polls, {r['bars']} bars seen "
              f"(writer: {r['written']} bars in {r['writer_s']:.1f} s = {r['written'] / r['writer_s']:,.0f} bars/s): "
              f"{1000 * r['cpu_s'] / max(r['written'], 1):.3f} CPU s per 1,000 bars; its scores against the re-reading one's at the end: max |diff| {r['max_diff']:.2g}")
    i, n = (1000 * res[k]["cpu_s"] / res[k]["written"] for k in ("incremental", "re-reading"))
    print(f"ratio re-reading / incremental (CPU s per 1,000 bars): {n / i:.1f}x")

REG = None
if __name__ == "__main__": main()
