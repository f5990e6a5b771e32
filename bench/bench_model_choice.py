"""Evaluation: the model `regime-nb fit` chooses with no options, against the old default and a plain two-regime HMM.

The protocol (issue 15): on each bundled series, a rolling walk-forward that refits on the last 1000 days every
126 days and trades the next 126 out of sample, long or cash, filled at the next close (a one-day delay), 10 bp per
side. Rows:
- buy & hold, under the same costs, over the same out-of-sample days;
- old default: the BIC-chosen GMM of 1-6 regimes (what `fit` did), long in its calmest regime, cash otherwise;
- HMM-2: a plain two-regime Gaussian HMM (hmmlearn, filtered probabilities), long in the calm regime, cash otherwise;
- chosen: `validation.choose_model` (what `fit` does now): family, regimes, covariance type and exposures chosen by
  walk-forward value inside each training window, BIC only pruning.
The bar: on the S&P 500 the chosen model earns at least HMM-2's Sharpe with at most half of buy & hold's drawdown.

Run: .venv/bin/python bench/bench_model_choice.py [--datasets sp500,nasdaq,wti,vix] [--rows chosen,hmm2]
Single process (the machine is shared); the time per row is printed.
"""
import argparse, logging, time, warnings
import pandas as pd
from regime_nb.data import DATASETS, load_dataset
from regime_nb.regimes import GMMRegime, HMMRegime
from regime_nb.validation import FixedChoice, walk_forward_choice

ROWS = {"old default": lambda: FixedChoice(GMMRegime(range(1, 7))), "HMM-2": lambda: FixedChoice(HMMRegime(2)), "chosen": lambda: None}

def evaluate(name, rows=tuple(ROWS), train=1000, test=126, costs_bps=10.0) -> pd.DataFrame:
    "One row per chooser (and buy & hold) of the protocol on dataset `name`."
    bars, out = load_dataset(name), {}
    for row in rows:
        t0 = time.perf_counter()
        wf = walk_forward_choice(bars, ROWS[row](), train=train, test=test, costs_bps=costs_bps)
        if not out: out["buy & hold"] = dict(wf.result.benchmark_stats, seconds=0.0)
        out[row] = dict(wf.stats, seconds=time.perf_counter() - t0, models=", ".join(f"{m} {n}x" for m, n in wf.folds.model.value_counts().head(3).items()))
    span = f"{wf.targets.index[0].date()} to {wf.targets.index[-1].date()}"
    df = pd.DataFrame(out).T[["sharpe", "max_drawdown", "total_return", "n_trades", "seconds", "models"]]
    return df.assign(series=name, span=span).set_index(["series", df.index])

if __name__ == "__main__":
    warnings.filterwarnings("ignore"); logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(DATASETS)); p.add_argument("--rows", default=",".join(ROWS))
    a = p.parse_args()
    tabs = []
    for name in a.datasets.split(","):
        tabs.append(evaluate(name, a.rows.split(",")))
        with pd.option_context("display.width", 250, "display.max_colwidth", 60):
            print(tabs[-1].to_string(float_format=lambda x: f"{x:.3f}"), flush=True)
    t = pd.concat(tabs)
    print("\n| series | out of sample | row | Sharpe | max drawdown | total return | trades |\n|---|---|---|---|---|---|---|")
    for (s, r), x in t.iterrows(): print(f"| {s} | {x.span} | {r} | {x.sharpe:.2f} | {x.max_drawdown:.3f} | {x.total_return:.2f} | {int(x.n_trades)} |")
