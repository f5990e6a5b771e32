"""Benchmark: regime scoring against scikit-learn and hmmlearn.

1. Online GMM `update` (one row) against scikit-learn `GaussianMixture.predict_proba` on a single row.
2. Batch GMM probabilities over 7.5M rows against scikit-learn `predict_proba`.
3. HMM filtered probabilities over 7.5M rows against hmmlearn `predict_proba` (forward-backward).

Run: .venv/bin/python bench/bench_regimes.py
"""
import time
import numpy as np
from sklearn.mixture import GaussianMixture
from regime_nb.simulate import simulate_regimes
from regime_nb.features import compute_features
from regime_nb.regimes import GMMRegime, HMMRegime

def best_of(f, repeat=3):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return min(ts)

def bench_online(K, D, n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((4000, D)) + rng.integers(0, K, 4000)[:, None]
    m = GMMRegime(n_components=K, n_init=1).fit(X)
    sc, rows = m.online(), X[:n % len(X) or len(X)]
    for x in rows[:100]: sc.update(x)
    t0 = time.perf_counter()
    for i in range(n): sc.update(X[i % len(X)])
    t_ours = (time.perf_counter() - t0) / n
    gm, Z = m.mixture_, (X - m.center_) / m.scale_
    t0 = time.perf_counter()
    for i in range(2000): gm.predict_proba(Z[i:i + 1])
    t_sk = (time.perf_counter() - t0) / 2000
    return t_ours, t_sk

if __name__ == "__main__":
    print("online GMM update (one row):")
    for K, D in ((3, 5), (8, 12)):
        o, s = bench_online(K, D)
        print(f"  K={K} D={D}: regime_nb {o * 1e6:.2f} us, scikit-learn predict_proba {s * 1e6:.1f} us, ratio {s / o:.0f}x")

    N = 7_500_000
    bars = simulate_regimes(N, seed=0)
    X = compute_features(bars).to_numpy()
    ok = np.isfinite(X).all(1)
    gmm = GMMRegime(n_components=3, n_init=1).fit(X[:300_000])
    gmm.predict_proba(X[:1000])
    t_ours = best_of(lambda: gmm.predict_proba(X), 3)
    Z = (X[ok] - gmm.center_) / gmm.scale_
    t_sk = best_of(lambda: gmm.mixture_.predict_proba(Z), 1)
    print(f"batch GMM probabilities, {N:,} rows, K=3, D={X.shape[1]}: regime_nb {t_ours:.2f} s, scikit-learn {t_sk:.2f} s, ratio {t_sk / t_ours:.1f}x")

    hmm = HMMRegime(n_components=3, n_init=1).fit(X[:200_000])
    hmm.predict_proba(X[:1000])
    t_ours = best_of(lambda: hmm.predict_proba(X), 2)
    t_hl = best_of(lambda: hmm.hmm_.predict_proba(Z), 1)
    print(f"HMM probabilities, {N:,} rows, K=3: regime_nb filtered {t_ours:.2f} s, hmmlearn predict_proba (smoothed) {t_hl:.2f} s, ratio {t_hl / t_ours:.1f}x")
