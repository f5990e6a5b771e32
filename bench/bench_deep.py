"""Benchmark: the Transformer regime classifier against the package's GMM and HMM on the S&P 500 (5,031 daily bars, 1999-2018).

1. Training time on all 20 years (the Transformer with its defaults: up to 50 epochs, early stopping; CPU, one torch thread).
2. Batch inference: `predict_proba` over every bar, per bar.
3. Online inference: the scorer's `update` per bar (warmed on the first 4,000 bars, then 1,000 bars one at a time).
Each is timed the same way for every model: the first call, then the best of N warm calls; the ratios are against the GMM and the HMM.

Run: .venv/bin/python bench/bench_deep.py [--repeat N]
"""
import argparse, os, sys, time
import numpy as np
sys.path.insert(0, os.path.dirname(__file__))
from timing import best_time
from regime_nb.data import load_dataset
from regime_nb.deep import DEEP_INSTALL, TransformerRegime, deep_spec, has_torch
from regime_nb.features import compute_features
from regime_nb.regimes import GMMRegime, HMMRegime

def first_and_best(fn, repeat):
    "Wall time of the first call, the best of `repeat` more, and the last result."
    t0 = time.perf_counter(); out = fn(); first = time.perf_counter() - t0
    best, out = best_time(fn, repeat) if repeat else (first, out)
    return first, best, out

def online_loop(model, A, warm=4000, n=1000):
    "Time per bar of `update` over rows warm..warm+n after warming on the rows before (a fresh scorer each call)."
    sc = model.online(); sc.update_block(A[:warm])
    t0 = time.perf_counter()
    for x in A[warm:warm + n]: sc.update(x)
    return (time.perf_counter() - t0) / n

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3, help="warm repetitions of the inference timings")
    ap.add_argument("--train-repeat", type=int, default=1, help="warm repetitions of each training (the Transformer's takes minutes)")
    a = ap.parse_args()
    if not has_torch(): print(f"skipped: PyTorch is not installed ({DEEP_INSTALL})"); sys.exit(0)
    import torch
    sp = load_dataset("sp500")
    X = compute_features(sp, deep_spec(sp))
    A = X.to_numpy()
    print(f"S&P 500: {len(X)} bars, features {list(X.columns)}; torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    makers = {"transformer": lambda: TransformerRegime(progress=False), "gmm-2": lambda: GMMRegime(2), "hmm-2": lambda: HMMRegime(2)}
    rows = {}
    for name, make in makers.items():
        ft, bt, m = first_and_best(lambda: make().fit(X), a.train_repeat)
        fb, bb, _ = first_and_best(lambda: m.predict_proba(X), a.repeat)
        per_bar = [online_loop(m, A) for _ in range(1 + a.repeat)]  # the first call, then the warm ones
        rows[name] = dict(train_first=ft, train_best=bt, batch_first=fb / len(X), batch_best=bb / len(X), online_first=per_bar[0], online_best=min(per_bar[1:] or per_bar))
        extra = f", {len(m.history_)} epochs, validation accuracy {m.history_.val_accuracy[m.history_.val_loss.idxmin()]:.3f} at the best epoch" if name == "transformer" else ""
        r = rows[name]
        print(f"{name:12s} train {r['train_first']:8.2f} s first, {r['train_best']:8.2f} s warm | batch {r['batch_first'] * 1e6:9.1f} us/bar first, "
              f"{r['batch_best'] * 1e6:9.2f} us/bar warm | online {r['online_first'] * 1e6:9.1f} us/bar first, {r['online_best'] * 1e6:9.2f} us/bar warm{extra}")
    t = rows["transformer"]
    for other in ("gmm-2", "hmm-2"):
        o = rows[other]
        print(f"transformer / {other}: training {t['train_best'] / o['train_best']:.0f}x, batch per bar {t['batch_best'] / o['batch_best']:.0f}x, "
              f"online per bar {t['online_best'] / o['online_best']:.0f}x (warm, best of {a.repeat})")
