"""Benchmark: the numba regime simulator against the same Markov-switching model written as a plain Python loop.

Run: .venv/bin/python bench/bench_simulator.py
"""
import math, random, time
import numpy as np
from regime_nb.simulate import simulate_regimes

N, N_PY = 7_500_000, 200_000

def simulate_python(n, P, mu, sigma, a=0.05, b=0.90, price0=100.0, seed=0):
    "The same model as `simulate_regimes_nb`, one bar at a time in plain Python (the obvious alternative)."
    rng = random.Random(seed)
    cum = [list(np.cumsum(row)) for row in P]
    k, g, e_prev, p = 0, 1.0, 0.0, price0
    out = []
    for t in range(n):
        if t > 0:
            u = rng.random(); k = next(i for i, c in enumerate(cum[k]) if u < c or i == len(cum[k]) - 1)
        g = (1 - a - b) + a * e_prev * e_prev + b * g
        z = rng.gauss(0, 1); s = sigma[k] * math.sqrt(g)
        r = mu[k] - 0.5 * s * s + s * z; e_prev = z * math.sqrt(g)
        hi = 0.5 * (r + math.sqrt(r * r - 2 * s * s * math.log(1 - rng.random())))
        lo = 0.5 * (r - math.sqrt(r * r - 2 * s * s * math.log(1 - rng.random())))
        c = p * math.exp(r)
        out.append((p, p * math.exp(hi), p * math.exp(lo), c, k)); p = c
    return out

if __name__ == "__main__":
    simulate_regimes(1000)  # load the compiled kernel
    t0 = time.perf_counter(); df = simulate_regimes(N, seed=0); t_nb = time.perf_counter() - t0
    p = df.attrs["regime_params"]
    t0 = time.perf_counter(); simulate_python(N_PY, p["transmat"], p["mu"], p["sigma"]); t_py = (time.perf_counter() - t0) * N / N_PY
    mb = df.memory_usage(index=True).sum() / 1e6
    print(f"simulate_regimes, {N:,} one-minute bars: regime_nb {t_nb:.2f} s ({mb:.0f} MB frame); "
          f"plain Python loop {t_py:.1f} s (extrapolated from {N_PY:,} bars); ratio {t_py / t_nb:.0f}x")
