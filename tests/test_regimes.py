"Regime models on data beyond the notebook's examples: other simulated markets, another real index, NaN gaps."
import numpy as np, pandas as pd
import pytest
from sklearn.base import clone
from regime_nb.data import load_dataset
from regime_nb.simulate import simulate_regimes
from regime_nb.features import compute_features
from regime_nb.regimes import (EnsembleRegime, GMMRegime, HMMRegime, KMeansRegime, RuleRegime, align_labels,
                               matched_accuracy, oracle_filter)

MARKETS = {
    "2 regimes": dict(vol=(0.12, 0.45), drift=(0.08, -0.2), mean_duration=(120, 40)),
    "3 regimes": dict(vol=(0.08, 0.20, 0.50), drift=(0.10, 0.0, -0.30), mean_duration=(100, 60, 30)),
    "4 regimes": dict(vol=(0.06, 0.15, 0.30, 0.70), drift=(0.1, 0.05, -0.1, -0.4), mean_duration=(150, 80, 50, 20)),
}

@pytest.mark.parametrize("name", list(MARKETS))
def test_filtered_accuracy_next_to_the_oracle(name):
    sim = simulate_regimes(15_000, freq="1D", seed=11, garch=None, **MARKETS[name])
    X = compute_features(sim)
    p = sim.attrs["regime_params"]
    k = len(p["mu"])
    r = np.log(sim.close).diff().fillna(0.0)
    acc = dict(oracle=matched_accuracy(sim.regime, oracle_filter(r, p["transmat"], p["mu"], p["sigma"]).argmax(1)),
               hmm=matched_accuracy(sim.regime, HMMRegime(k).fit(X).predict(X)),
               gmm=matched_accuracy(sim.regime, GMMRegime(k).fit(X).predict(X)))
    print(name, {m: round(a, 3) for m, a in acc.items()})
    assert acc["oracle"] > 1.5 / k
    assert acc["hmm"] > acc["oracle"] - 0.15, acc
    assert acc["gmm"] > acc["oracle"] - 0.25, acc

@pytest.mark.parametrize("name", ["2 regimes", "3 regimes"])
def test_bic_recovers_the_number_of_regimes_when_the_model_is_right(name):
    # On 1-bar returns a Gaussian HMM is the true model and BIC finds K. On the overlapping multi-horizon
    # features (autocorrelated, non-Gaussian) BIC prefers more states: K from BIC is a modelling choice there.
    sim = simulate_regimes(8_000, freq="1D", seed=5, garch=None, **MARKETS[name])
    X = compute_features(sim)[["log_return_1"]]
    assert HMMRegime(range(1, 5), n_init=1).fit(X).n_regimes_ == len(MARKETS[name]["vol"])

@pytest.fixture(scope="module")
def nasdaq_features():
    return compute_features(load_dataset("nasdaq"))

@pytest.mark.parametrize("model", [GMMRegime(4), HMMRegime(3), KMeansRegime(4), RuleRegime(),
                                   EnsembleRegime({"a": [GMMRegime(3), KMeansRegime(3)], "b": [HMMRegime(3)]})],
                         ids=lambda m: type(m).__name__)
def test_online_equals_batch_with_nan_gaps(model, nasdaq_features):
    X = nasdaq_features.copy()
    X.iloc[2000:2003] = np.nan  # a hole in the middle: the HMM only predicts through it
    m = clone(model).fit(X)
    P = m.predict_proba(X).to_numpy()
    sc = m.online()
    on = np.array([sc.update(x) for x in X.to_numpy()])
    assert (np.isnan(on).any(1) == np.isnan(P).any(1)).all()
    assert np.isnan(P[2000:2003]).all() and not np.isnan(P[2003]).any()
    assert np.nanmax(np.abs(on - P)) <= 1e-9

@pytest.mark.parametrize("cls", [GMMRegime, HMMRegime, KMeansRegime])
def test_probabilities_are_causal(cls, nasdaq_features):
    m = cls(3).fit(nasdaq_features)
    full = m.predict_proba(nasdaq_features).to_numpy()
    for cut in (500, 2500, 4000):
        part = m.predict_proba(nasdaq_features.iloc[:cut]).to_numpy()
        np.testing.assert_allclose(part, full[:cut], rtol=0, atol=1e-12, equal_nan=True)

def test_labels_survive_refit_on_other_data_and_seed(nasdaq_features):
    ref = GMMRegime(3, random_state=0).fit(nasdaq_features.loc[:"2012"])
    new = GMMRegime(3, random_state=3).fit(nasdaq_features.loc["2003":])
    align_labels(new, ref)
    a, b = ref.predict(nasdaq_features), new.predict(nasdaq_features)
    ok = a >= 0
    assert (a[ok] == b[ok]).mean() > 0.8
    assert list(new.regime_summary(nasdaq_features.loc["2003":"2012"]).volatility_ann.rank()) == [1, 2, 3]

def test_regime_zero_is_calmest_and_crisis_is_turbulent(nasdaq_features):
    m = GMMRegime().fit(nasdaq_features)
    s = m.regime_summary(nasdaq_features)
    assert s.volatility_ann.is_monotonic_increasing
    lab = m.predict(nasdaq_features)
    assert (lab["2008-09-15":"2009-03-31"] >= m.n_regimes_ / 2).mean() > 0.8

@pytest.mark.parametrize("model", [GMMRegime(3, n_init=1), HMMRegime(3, n_init=1, n_iter=50), KMeansRegime(3, n_init=1),
                                   RuleRegime(), EnsembleRegime({"a": [GMMRegime(2, n_init=1), KMeansRegime(2, n_init=1)],
                                                                 "b": [HMMRegime(2, n_init=1, n_iter=50)]})],
                         ids=lambda m: type(m).__name__)
def test_update_block_equals_update(model, nasdaq_features):
    "Blocks of random sizes (0 to 100 rows, as live messages) give the bits of `update` row by row, across NaN gaps."
    X = nasdaq_features.copy()
    X.iloc[2000:2003] = np.nan
    m = clone(model).fit(X)
    arr = X.to_numpy()
    one, blk = m.online(), m.online()
    rowwise = np.array([one.update(x) for x in arr])
    cuts = np.cumsum(np.random.default_rng(1).integers(0, 101, len(arr)))
    cuts = np.concatenate([[0], cuts[cuts < len(arr)], [len(arr)]])
    blocks = np.concatenate([blk.update_block(arr[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
    np.testing.assert_array_equal(blocks, rowwise)
    np.testing.assert_array_equal(blk.loglik, one.loglik)
    if hasattr(one, "snapshot"): assert blk.snapshot() == one.snapshot()
    np.testing.assert_array_equal(blk.update_block(arr[1990:2010]), np.array([one.update(x) for x in arr[1990:2010]]))
