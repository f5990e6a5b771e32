"Timing helpers shared by the benchmarks."
import time

def best_time(fn, repeat):
    "The best wall time of `repeat` calls of `fn`, and the last call's result."
    out, best = None, float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
