"""Evaluation: the Transformer regime classifier against the package's GMM and HMM on the S&P 500, walk-forward, out of sample only, with costs.

Each model is refitted every `--test` bars on the `--train` bars before (rolling), with `regime_nb.validation.walk_forward`, and its
out-of-sample regimes drive the same two strategies: long/cash (exposures 1, 0) and the design's 1.5x/0.3x (calm, turbulent).
All models have two regimes; the Transformer's labels come from its k-means teacher fitted on each training window only; the teacher
alone (k-means on the realized volatilities, scored by distance to its centroids) is walked forward too.
Costs: `--costs-bps` per side. The table (Sharpe, volatility, max drawdown, turnover, ...) is printed as markdown and written as CSV.

The second strategy reuses each walk-forward's stitched out-of-sample probabilities (a `RegimeExposure` target at bar t depends on the
probabilities at t only), backtested by the same `backtest`; for the GMM this is checked against a walk-forward run with that strategy.

Run: .venv/bin/python bench/eval_deep.py [--train 1000] [--test 252] [--costs-bps 10] [--out output/eval_deep]
"""
import argparse, time
from pathlib import Path
import numpy as np, pandas as pd
from regime_nb.backtest import backtest
from regime_nb.data import load_dataset
from regime_nb.deep import TransformerRegime, deep_spec, require_torch
from regime_nb.features import FeatureSpec
from regime_nb.regimes import GMMRegime, HMMRegime, KMeansRegime
from regime_nb.strategies import RegimeExposure
from regime_nb.validation import walk_forward

STRATEGIES = {"long/cash": (1.0, 0.0), "1.5x/0.3x": (1.5, 0.3)}
COLUMNS = ["sharpe", "annual_return", "annual_volatility", "max_drawdown", "turnover", "n_trades"]

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=1000); ap.add_argument("--test", type=int, default=252)
    ap.add_argument("--costs-bps", type=float, default=10.0); ap.add_argument("--out", default="output/eval_deep")
    a = ap.parse_args()
    require_torch()
    bars = load_dataset("sp500")
    spec = deep_spec(bars)
    models = {"Transformer (k-means teacher)": TransformerRegime(progress=False), "GMM-2": GMMRegime(2), "HMM-2": HMMRegime(2),
              "k-means-2 on volatility (the teacher alone)": KMeansRegime(2)}
    specs = {"k-means-2 on volatility (the teacher alone)": FeatureSpec([f for f in spec if f["kind"] == "realized_vol"])}  # what the teacher reads
    first_name, first_ex = next(iter(STRATEGIES.items()))
    rows, wfs = [], {}
    for name, model in models.items():
        t0 = time.perf_counter()
        wf = wfs[name] = walk_forward(bars, model, RegimeExposure(first_ex), spec=specs.get(name, spec), train=a.train, test=a.test, costs_bps=a.costs_bps, progress=True)
        print(f"{name}: {len(wf.folds)} folds, {wf.folds.test_start.iloc[0]:%Y-%m-%d} .. {wf.folds.test_end.iloc[-1]:%Y-%m-%d}, {time.perf_counter() - t0:.0f} s", flush=True)
        oos = bars.loc[wf.targets.index]
        for sname, ex in STRATEGIES.items():
            res = wf.result if sname == first_name else backtest(oos, RegimeExposure(ex).targets(wf.proba), costs_bps=a.costs_bps)
            rows.append(dict(model=name, strategy=sname, **{k: res.stats[k] for k in COLUMNS}))
        if name.startswith("GMM"):  # the reuse of the probabilities equals a walk-forward run with the second strategy
            sname, ex = list(STRATEGIES.items())[1]
            direct = walk_forward(bars, model, RegimeExposure(ex), spec=spec, train=a.train, test=a.test, costs_bps=a.costs_bps).stats
            assert all(np.isclose(direct[k], rows[-1][k], rtol=1e-12, atol=1e-12) for k in COLUMNS), (direct, rows[-1])
    assert len({tuple(w.targets.index) for w in wfs.values()}) == 1, "the models' out-of-sample bars differ"
    bh = wf.result.benchmark_stats
    rows.append(dict(model="buy & hold", strategy="1x", **{k: bh.get(k, np.nan) for k in COLUMNS}))
    table = pd.DataFrame(rows)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out/"walk_forward.csv", index=False)
    tf = wfs["Transformer (k-means teacher)"]
    acc = [m.history_.val_accuracy[m.history_.val_loss.idxmin()] for m in tf.models]
    print(f"\nS&P 500, out of sample {tf.targets.index[0]:%Y-%m-%d} .. {tf.targets.index[-1]:%Y-%m-%d} ({len(tf.targets)} bars), "
          f"refit every {a.test} bars on the {a.train} before, costs {a.costs_bps:g} bps per side")
    print(f"Transformer: {np.mean([len(m.history_) for m in tf.models]):.1f} epochs per fit on average, validation accuracy against the teacher "
          f"{np.mean(acc):.3f} (min {np.min(acc):.3f}), {np.mean([m.fit_seconds_ for m in tf.models]):.1f} s per fit")
    fmt = table.assign(**{c: table[c].map(lambda v: f"{v:.3f}") for c in COLUMNS[:-1]}, n_trades=table.n_trades.map(lambda v: f"{v:.0f}"))
    print("\n| model | strategy | " + " | ".join(COLUMNS) + " |\n|---|---|" + "---|" * len(COLUMNS))
    for r in fmt.itertuples(index=False): print("| " + " | ".join(map(str, r)) + " |")
    print(f"\nwritten: {out/'walk_forward.csv'}")
