"""Benchmark: regime_nb default features (numba kernels) against pandas, and the live update cost.

Run: .venv/bin/python bench/bench_features.py [--bars 7500000] [--updates 200000] [--repeat 5]
Times are warm (numba compiled, one untimed run of each side first) and the best of `--repeat` runs.
"""
import argparse, time
import numpy as np, pandas as pd
from regime_nb.simulate import simulate_regimes
from regime_nb.features import FeatureEngine, FeatureSpec, compute_features
from timing import best_time


def pandas_default(bars):
    "The default features the obvious pandas way: np.log + diff + rolling std."
    lc = np.log(bars["close"])
    r = lc.diff()
    return pd.DataFrame({"log_return_1": r, "log_return_5": lc.diff(5), "log_return_20": lc.diff(20),
                         "realized_vol_5": r.rolling(5).std(), "realized_vol_20": r.rolling(20).std()})


def main(n_bars=7_500_000, n_updates=200_000, repeat=5):
    t0 = time.perf_counter()
    bars = simulate_regimes(n_bars, freq="1min", seed=0)
    print(f"simulated {n_bars:,} one-minute bars in {time.perf_counter() - t0:.1f} s")
    spec = FeatureSpec.default()

    t0 = time.perf_counter()
    compute_features(bars.iloc[:1000], spec)  # compile (or load numba's cache)
    print(f"numba compile/cache load: {time.perf_counter() - t0:.2f} s")
    compute_features(bars, spec), pandas_default(bars)  # untimed warm runs of both
    t_nb, ours = best_time(lambda: compute_features(bars, spec), repeat)
    t_pd, ref = best_time(lambda: pandas_default(bars), repeat)
    diff = np.nanmax(np.abs(ours.to_numpy() - ref[ours.columns].to_numpy()))
    assert diff < 1e-9, f"regime_nb and pandas disagree by {diff}"

    closes = bars["close"].to_numpy()[:n_updates]
    eng = FeatureEngine(spec)
    for c in closes[:1000]: eng.update({"close": c})  # warm
    eng = FeatureEngine(spec)
    t0 = time.perf_counter()
    for c in closes: eng.update({"close": c})
    t_dict = (time.perf_counter() - t0) / len(closes)
    rows = np.ascontiguousarray(closes[:, None])
    eng = FeatureEngine(spec)
    t0 = time.perf_counter()
    for r in rows: eng.update_array(r)
    t_arr = (time.perf_counter() - t0) / len(rows)

    print(f"max |regime_nb - pandas| = {diff:.1e}")
    print()
    print(f"features batch, {n_bars:,} bars, {len(spec)} default features: regime_nb {t_nb:.3f} s, "
          f"pandas {t_pd:.3f} s, ratio {t_pd / t_nb:.1f}x")
    print(f"FeatureEngine.update: {t_dict * 1e6:.2f} us/bar (default set, bar as a dict)")
    print(f"FeatureEngine.update_array: {t_arr * 1e6:.2f} us/bar (default set, float array fast path)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bars", type=int, default=7_500_000)
    p.add_argument("--updates", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    main(a.bars, a.updates, a.repeat)
