"""Benchmark: block updates (one compiled call per live message) against the per-row Python loop.

A live message carries up to 64 bars. For the default features (`FeatureEngine`) and for GMM and HMM scorers
(2 regimes, fitted on simulated bars), push `--rows` rows through the per-row API in a Python loop, and through
`FeatureEngine.update_rows` / `scorer.update_block` in blocks of `--block` rows; print rows/s and the ratio.
Both sides give the same bits (checked here).

Run: .venv/bin/python bench/bench_blocks.py [--rows 100000] [--block 64] [--repeat 3]
Times are warm (numba compiled by an untimed run of each side first) and the best of `--repeat` runs.
"""
import argparse, time
import numpy as np
from regime_nb.simulate import simulate_regimes
from regime_nb.features import FeatureEngine, FeatureSpec, compute_features
from regime_nb.regimes import GMMRegime, HMMRegime
from timing import best_time


def blocks(rows, b): return [rows[i:i + b] for i in range(0, len(rows), b)]


def compare(name, per_row, per_block, n, repeat):
    "Time both sides (warm), check they agree bit for bit, print rows/s and the ratio."
    per_row(), per_block()  # untimed warm runs: compile (or load numba's cache)
    t_row, a = best_time(per_row, repeat)
    t_blk, b = best_time(per_block, repeat)
    np.testing.assert_array_equal(a, b)
    print(f"{name:<44} per-row loop {n / t_row / 1e6:6.2f}M rows/s ({t_row / n * 1e6:5.2f} us/row), "
          f"blocks {n / t_blk / 1e6:6.2f}M rows/s ({t_blk / n * 1e6:5.3f} us/row), ratio {t_row / t_blk:5.1f}x")


def main(n_rows=100_000, block=64, repeat=3):
    t0 = time.perf_counter()
    bars = simulate_regimes(n_rows, freq="1min", seed=0)
    train = compute_features(simulate_regimes(20_000, freq="1min", seed=1))
    gmm = GMMRegime(2, n_init=1).fit(train)
    hmm = HMMRegime(2, n_init=1).fit(train)
    print(f"{n_rows:,} simulated one-minute bars, GMM(2) and HMM(2) fitted on 20,000 others: {time.perf_counter() - t0:.1f} s")
    print(f"blocks of {block} rows; {repeat} timed runs each, best kept")
    print()

    spec = FeatureSpec.default()
    rows = np.ascontiguousarray(bars[FeatureEngine(spec).inputs].to_numpy(np.float64))
    dicts = [{"close": c} for c in rows[:, 0]]

    def feats_dict():
        eng = FeatureEngine(spec)
        return np.array([eng.update(d) for d in dicts])

    def feats_array():
        eng = FeatureEngine(spec)
        return np.array([eng.update_array(r) for r in rows])

    def feats_rows():
        eng = FeatureEngine(spec)
        return np.concatenate([eng.update_rows(b) for b in blocks(rows, block)])

    compare(f"features, default set ({len(spec)}), update(dict)", feats_dict, feats_rows, n_rows, repeat)
    compare(f"features, default set ({len(spec)}), update_array", feats_array, feats_rows, n_rows, repeat)

    X = np.ascontiguousarray(compute_features(bars, spec).to_numpy())
    for name, model in (("GMMRegime(2)", gmm), ("HMMRegime(2)", hmm)):
        def score_rows(model=model):
            sc = model.online()
            return np.array([sc.update(x) for x in X])

        def score_blocks(model=model):
            sc = model.online()
            return np.concatenate([sc.update_block(b) for b in blocks(X, block)])

        compare(f"{name} scorer ({type(model.online()).__name__}), update", score_rows, score_blocks, n_rows, repeat)

    def pipeline_rows():  # one live service's work per bar: features, then the HMM filter
        eng, sc = FeatureEngine(spec), hmm.online()
        return np.array([sc.update(eng.update_array(r)) for r in rows])

    def pipeline_blocks():
        eng, sc = FeatureEngine(spec), hmm.online()
        return np.concatenate([sc.update_block(eng.update_rows(b)) for b in blocks(rows, block)])

    compare("features + HMMRegime(2) filter, chained", pipeline_rows, pipeline_blocks, n_rows, repeat)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--block", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    main(a.rows, a.block, a.repeat)
