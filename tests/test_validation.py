"Walk-forward, gates, sweeps and scans beyond the notebook's examples: another index, an HMM, a real Dask cluster."
import numpy as np, pandas as pd
import pytest
from regime_nb.core import RegimeNbError
from regime_nb.data import load_dataset
from regime_nb.simulate import simulate_regimes
from regime_nb.regimes import GMMRegime, HMMRegime, KMeansRegime
from regime_nb.strategies import RegimeExposure, TrendFilter, ZScoreRegimeSwitch
from regime_nb.features import FeatureSpec
from regime_nb.validation import RegimePipeline, check_gates, check_no_leakage, scan, sweep, walk_forward

@pytest.fixture(scope="module")
def nasdaq():
    return load_dataset("nasdaq")

def test_no_leakage_with_an_hmm_and_parameter_choice(nasdaq):
    assert check_no_leakage(nasdaq.loc[:"2010"], HMMRegime(2, n_init=1), RegimeExposure((1.0, 0.0)), fold=5,
                            train=756, val=126, test=126, param_grid={"exposures": [(1.0, 0.0), (1.0, 0.5), (0.5, 0.0)]},
                            costs_bps=10)

def test_leakage_check_catches_a_training_window_that_overlaps_the_test(monkeypatch, nasdaq):
    import regime_nb.validation as v
    real = v.make_folds
    def leaky(*a, **k):  # the bug the check exists for: a fit that sees its own test window
        return [v.Fold(f.i, (f.train[0], f.test[1]), f.val, f.test) for f in real(*a, **k)]
    monkeypatch.setattr(v, "make_folds", leaky)
    with pytest.raises(RegimeNbError, match="leakage"):
        check_no_leakage(nasdaq.loc[:"2008"], GMMRegime(2), RegimeExposure((1.0, 0.0)), fold=3, train=504, test=126, costs_bps=0)

def test_walk_forward_oos_is_stitched_and_continuous(nasdaq):
    wf = walk_forward(nasdaq, KMeansRegime(2), RegimeExposure((1.0, 0.0)), train=504, test=63, expanding=True, costs_bps=10)
    eq = wf.result.equity
    assert eq.index.is_monotonic_increasing and eq.index[0] == wf.folds.test_start.iloc[0]
    assert eq.index[-1] == nasdaq.index[-1] and len(wf.folds) > 50
    assert wf.folds.train_start.nunique() == 1  # expanding: every fold trains from the first usable bar
    assert np.isfinite(wf.folds.test_sharpe).mean() > 0.8

def test_gates_explain_every_rule():
    g = check_gates({"max_drawdown": 0.2, "sharpe": 0.8, "avg_monthly_return": 0.01},
                    {"max_drawdown": ("<=", 0.3), "sharpe": (">=", 1.0), "avg_monthly_return": (">=", 0.005)})
    assert not g.passed and g.table.passed.tolist() == [True, False, True]
    assert "sharpe = 0.8 fails >= 1" in g.reasons[1]

def test_sweep_on_a_dask_local_cluster_matches_joblib():
    from distributed import Client, LocalCluster
    bars = simulate_regimes(20_000, freq="1h", seed=3)
    grid = {"window": [10, 30, 90], "long_only": [True, False]}
    local = sweep(bars, TrendFilter(), grid, costs_bps=2, n_jobs=2, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cl, Client(cl) as client:
        remote = sweep(bars, TrendFilter(), grid, costs_bps=2, scheduler=client, progress=False)
        by_addr = sweep(bars, TrendFilter(), grid, costs_bps=2, scheduler=cl.scheduler_address, progress=False)
    cols = ["param_window", "param_long_only", "sharpe", "total_return", "max_drawdown"]
    pd.testing.assert_frame_equal(local[cols], remote[cols])
    pd.testing.assert_frame_equal(local[cols], by_addr[cols])

def test_scan_keeps_passing_assets_and_reports_broken_ones(tmp_path):
    bad = tmp_path/"bad.csv"
    bad.write_text("date,close\n2020-01-01,1\n2020-01-02,oops\n")
    pipe = RegimePipeline(GMMRegime(2), RegimeExposure((1.0, 0.0)), backtest_kw=dict(costs_bps=10))
    res = scan(["sp500", "nasdaq", "wti", str(bad)], pipe, gates={"max_drawdown": ("<=", 0.45)}, n_jobs=2, progress=False)
    assert set(res.source) == {"sp500", "nasdaq", "wti", str(bad)}
    assert res.passed.iloc[0] or not res.passed.any()
    assert res.set_index("source").loc[str(bad), "error"] != ""
    assert (res.passed == (res.max_drawdown <= 0.45)).iloc[:3].all()

def test_a_strategy_that_reads_a_feature_the_model_does_not_walks_forward_on_it(nasdaq):
    bars = nasdaq.loc["2004":"2009"]
    zs = ZScoreRegimeSwitch(trending=(1,), tick_size=1.0, trail_ticks=40, min_confidence=0.0)
    wf = walk_forward(bars, GMMRegime(2, random_state=0), zs, train=504, test=126)  # the model reads returns and volatilities only
    assert all(m.n_features_in_ == 5 for m in wf.models)
    z = ((bars.close - bars.close.rolling(20).mean()) / bars.close.rolling(20).std()).rename("zscore_20")
    X = FeatureSpec.default()
    from regime_nb.features import compute_features
    X = compute_features(bars, X)
    for (i, row), m in zip(wf.folds.iterrows(), wf.models):  # each fold's targets: the strategy over the model's probabilities and a pandas z-score
        lo, a, b = bars.index.get_loc(row.train_start), bars.index.get_loc(row.test_start), bars.index.get_loc(row.test_end) + 1
        inp = pd.concat([bars.iloc[lo:b], X.iloc[lo:b], m.predict_proba(X.iloc[lo:b]), z.iloc[lo:b]], axis=1)
        np.testing.assert_allclose(wf.targets.loc[bars.index[a]:bars.index[b - 1]].to_numpy(), zs.targets(inp).iloc[a - lo:].to_numpy(), atol=1e-9)
    assert wf.stats["n_trades"] > 5

@pytest.mark.slow  # 7-18 minutes a series on a 2-core machine: `make test-slow` runs it, `make test` does not
@pytest.mark.parametrize("series", ["sp500", "nasdaq"])
def test_the_default_choice_meets_the_bar(series):
    "Issue 15's protocol: 1000-day fits every 126 days, long/cash, one-day delay, 10 bp. The model `fit` chooses with no options earns at least "
    "a plain two-regime HMM's Sharpe with at most half of buy & hold's drawdown. Slow: 7-18 minutes a series on this shared 2-core machine (see README)."
    from regime_nb.validation import FixedChoice, walk_forward_choice
    sp = load_dataset(series)
    hmm2 = walk_forward_choice(sp, FixedChoice(HMMRegime(2)))
    chosen = walk_forward_choice(sp)
    assert chosen.targets.index.equals(hmm2.targets.index)
    bh = chosen.result.benchmark_stats
    s = chosen.stats
    print(f"chosen: Sharpe {s['sharpe']:.3f}, max drawdown {s['max_drawdown']:.3f}; HMM-2: {hmm2.stats['sharpe']:.3f}, {hmm2.stats['max_drawdown']:.3f}; "
          f"buy & hold: {bh['sharpe']:.3f}, {bh['max_drawdown']:.3f}")
    assert s["sharpe"] >= hmm2.stats["sharpe"], (s["sharpe"], hmm2.stats["sharpe"])
    assert s["max_drawdown"] <= 0.5 * bh["max_drawdown"], (s["max_drawdown"], bh["max_drawdown"])
