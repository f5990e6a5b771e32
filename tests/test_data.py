"Data at scale and across processes: the simulator's size, speed-independent memory, real datasets."
import json, math, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from collections import Counter
from regime_nb.data import (BAR_KINDS, DATASETS, OHLCV, TICK_KINDS, BarBuilder, BarGuard, TickGuard, find_issues, load_dataset, resample_bars)
from regime_nb.simulate import simulate_regimes, simulate_ticks, stationary_distribution

def _peak_rss_mb(n):
    "Peak resident memory growth (MB) of simulating `n` bars in a fresh process, after warm-up, and the frame's size."
    code = f"""
import json, re
from pathlib import Path
from regime_nb.simulate import simulate_regimes
simulate_regimes(1000)  # load the compiled kernel, import pandas
def kb(field): return int(re.search(field + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
base = kb("VmRSS")
df = simulate_regimes({n})
print(json.dumps([base / 1024, kb("VmHWM") / 1024, int(df.memory_usage(index=True).sum())]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)

@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak RSS")
def test_simulator_memory_is_proportional_to_output():
    b1, p1, out1 = _peak_rss_mb(1_000_000)
    b4, p4, out4 = _peak_rss_mb(4_000_000)
    grow1, grow4 = p1 - b1, p4 - b4
    # the frame itself is 57 bytes a bar; the peak may hold the kernel's arrays and the frame once each
    assert grow4 * 1024**2 / 4_000_000 < 3 * out4 / 4_000_000, (grow4, out4)
    assert 3.0 < grow4 / grow1 < 5.0, (grow1, grow4)

def test_simulated_regimes_match_their_parameters():
    df = simulate_regimes(1_000_000, seed=7)
    p = df.attrs["regime_params"]
    share = df.regime.value_counts(normalize=True).sort_index().to_numpy()
    np.testing.assert_allclose(share, stationary_distribution(np.array(p["transmat"])), atol=0.03)
    r = np.log(df.close).diff()
    np.testing.assert_allclose(r.groupby(df.regime).std().to_numpy(), p["sigma"], rtol=0.03)
    runs = (df.regime != df.regime.shift()).cumsum()
    durations = df.groupby(runs).regime.agg(["first", "size"]).groupby("first")["size"].mean()
    np.testing.assert_allclose(durations.to_numpy(), [600, 400, 150], rtol=0.1)
    o, h, l, c = (df[k].to_numpy() for k in ("open", "high", "low", "close"))
    assert (h >= np.maximum(o, c)).all() and (l <= np.minimum(o, c)).all()

def test_daily_simulation_has_business_like_frequency():
    df = simulate_regimes(2000, freq="1D", seed=3, mean_duration=(60, 40, 15))
    assert df.index.freqstr == "D" and df.close.gt(0).all()
    assert not (find_issues(df).severity == "error").any()

def test_ticks_resample_to_valid_bars():
    t = simulate_ticks(300_000, seed=11)
    b = resample_bars(t, "1min")
    assert b.volume.sum() == t["size"].sum()
    assert not (find_issues(b).severity == "error").any()

@pytest.mark.parametrize("name", list(DATASETS))
def test_real_datasets_have_no_errors(name):
    df = load_dataset(name)
    assert df.index.is_monotonic_increasing and not df.index.has_duplicates
    iss = find_issues(df)
    assert not (iss.severity == "error").any(), iss[iss.severity == "error"]

def test_datasets_load_without_importing_arch():
    "The bundled datasets are read straight from the files arch ships: a live service replaying one never pays arch's import (scipy, matplotlib: seconds)."
    code = "import sys; from regime_nb.data import DATASETS, load_dataset\nfor n in DATASETS: load_dataset(n)\nprint(sorted(m for m in ('arch', 'scipy.stats', 'matplotlib', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out

def _bad_tick(kind, t, b, a, p, s, rng):
    "A tick of problem `kind` made from the last good tick `(t, b, a, p, s)`."
    m, w = 0.5 * (b + a), 2.0 * max(a - b, 1e-4 * 0.5 * (b + a))  # w: TickGuard's default tolerance beyond the quote
    j = int(rng.integers(4))
    if kind == "type": return [(float(t), b, a, p, s), (str(t), b, a, p, s), (t, b, a, str(p), s), (t, b, a, p, None), (t, True, a, p, s),
                               (np.float64(t), b, a, p, s), (t, b, a, p, 10**400), (t, b, a, np.bool_(True), s)][int(rng.integers(8))]
    if kind in ("nan", "inf"):
        v = [b, a, p, s]; v[j] = np.nan if kind == "nan" else float(rng.choice([np.inf, -np.inf])); return (t, *v)
    if kind == "nonpositive":
        v = [b, a, p]; v[j % 3] = float(rng.choice([0.0, -p])); return (t, *v, s)
    if kind == "size": return (t, b, a, p, float(rng.choice([0.0, -s])))
    if kind == "crossed": return (t, a + 0.1 * w, b, m, s)
    if kind == "off_quote": return (t, b, a, a + w * rng.uniform(1.5, 10) if j % 2 else b - w * rng.uniform(1.5, 10), s)
    if kind == "out_of_order": return (t - int(rng.integers(1, 10**9)), b, a, p, s)
    f = math.exp(rng.choice([-1, 1]) * rng.uniform(0.03, 0.2))  # spike: the whole quote moves 3% to 20%
    return (t, b * f, a * f, p * f, s)

def _fuzz_ticks(seed, n=60_000, p_bad=0.03):
    "Simulated good ticks (some sharing a timestamp, some locked or just outside the quote, fractional sizes) with 1-3 bad ticks of random kinds between some of them; `(rows, expected kind or None)`."
    rng = np.random.default_rng(seed)
    tk = simulate_ticks(n, seed=seed)
    t = tk.index.as_unit("ns").asi8.copy()
    for i in np.flatnonzero(rng.random(n) < 0.05)[1:]: t[i] = t[i - 1]
    b, a, p = tk.bid.to_numpy().copy(), tk.ask.to_numpy().copy(), tk.price.to_numpy().copy()
    s = tk["size"].to_numpy() * rng.uniform(0.1, 1.0, n)
    locked = rng.random(n) < 0.01; b[locked] = a[locked] = p[locked]
    outside = ~locked & (rng.random(n) < 0.01); p[outside] += np.where(p[outside] == a[outside], 1, -1) * 0.5 * (a - b)[outside]
    rows, want = [], []
    for i in range(n):
        good = (int(t[i]), float(b[i]), float(a[i]), float(p[i]), float(s[i]))
        rows.append(good); want.append(None)
        if rng.random() < p_bad:
            for kind in rng.choice(TICK_KINDS if i > 250 else TICK_KINDS[:-1], size=int(rng.integers(1, 4))):
                rows.append(_bad_tick(kind, *good, rng)); want.append(str(kind))
    return rows, want

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tick_guard_and_bar_builder_fuzz(seed):
    rows, want = _fuzz_ticks(seed)
    g = TickGuard()
    got = [g.check(*r) for r in rows]
    wrong = [(i, w, k, rows[i]) for i, (w, k) in enumerate(zip(want, got)) if w != k]
    assert not wrong, wrong[:5]  # every bad tick rejected under its kind, no good tick rejected
    assert g.rejected == Counter(w for w in want if w) and set(g.rejected) == set(TICK_KINDS), g.rejected
    assert g.warnings == {}  # isolated bad prints are never taken for a new level
    good = [r for r, k in zip(rows, got) if k is None]
    ticks = pd.DataFrame(good, columns=["ts", "bid", "ask", "price", "size"]).assign(ts=lambda d: pd.to_datetime(d.ts, utc=True)).set_index("ts")
    for rule, label in [("1min", "left"), ("7min", "right"), ("1s", "left")]:
        bb, bars = BarBuilder(rule, label), []
        for ts, _, _, price, size in good: bars += bb.add(ts, price, size)
        bars += bb.flush()
        got_b, ref = pd.DataFrame(bars), resample_bars(ticks, rule, label=label)
        np.testing.assert_array_equal(got_b.ts.to_numpy(), ref.index.as_unit("ns").asi8)
        np.testing.assert_array_equal(got_b[["open", "high", "low", "close"]].to_numpy(), ref[["open", "high", "low", "close"]].to_numpy())
        np.testing.assert_allclose(got_b.volume.to_numpy(), ref.volume.to_numpy(), rtol=1e-12)

class _RefBarGuard:
    "BarGuard's rules in plain Python, bar by bar: an independent reference for the compiled step."
    def __init__(self, spike_z=25.0, warn_z=10.0, halflife=20.0, warmup=20, confirm=3):
        self.spike_z, self.warn_z, self.alpha, self.warmup, self.confirm = spike_z, warn_z, 1 - 0.5 ** (1 / halflife), warmup, confirm
        self.last_ts, self.last_close, self.scale, self.n, self.jump_close, self.jump_n, self.rejected, self.warnings = None, None, 0.0, 0, None, 0, {}, {}
    def check(self, ts, o, h, l, c, v):
        lim = self.spike_z * 1.2533 * self.scale
        if any(x != x for x in (o, h, l, c, v)): kind = "nan"
        elif any(math.isinf(x) for x in (o, h, l, c, v)): kind = "inf"
        elif min(o, h, l, c) <= 0 or v < 0: kind = "nonpositive"
        elif h < max(o, c) or l > min(o, c): kind = "ohlc"
        elif self.last_ts is not None and ts == self.last_ts: kind = "duplicate_ts"
        elif self.last_ts is not None and ts < self.last_ts: kind = "out_of_order"
        elif self.n > self.warmup and self.scale > 0 and abs(math.log(c / self.last_close)) > lim: kind = "spike"
        else: kind = None
        new_level = False
        if kind == "spike":
            same = self.jump_close is not None and abs(math.log(c / self.jump_close)) <= lim
            self.jump_close, self.jump_n = c, (self.jump_n + 1 if same else 1)
            new_level = bool(self.confirm) and self.jump_n >= self.confirm
            if new_level: self.warnings["jump"] = self.warnings.get("jump", 0) + 1
        if kind and not new_level: self.rejected[kind] = self.rejected.get(kind, 0) + 1; return kind
        if not new_level and self.last_close is not None:
            a = abs(math.log(c / self.last_close))
            if self.n > self.warmup and self.scale > 0 and a > self.warn_z * 1.2533 * self.scale: self.warnings["large_move"] = self.warnings.get("large_move", 0) + 1
            self.scale = a if self.n == 1 else self.scale + self.alpha * (a - self.scale)
        self.last_ts, self.last_close, self.n, self.jump_n = ts, c, self.n + 1, 0
        return None

def _fuzz_bars(df, seed):
    "Timestamps and OHLCV of `df` with a bad bar of some kind, a burst of spikes or a lasting new level at 5% of the bars."
    rng = np.random.default_rng(seed)
    ts, x = df.index.as_unit("ns").asi8.copy(), df[list(OHLCV)].to_numpy().copy()
    for i in rng.choice(np.arange(1, len(ts)), len(ts) // 20, replace=False):
        k = rng.integers(9)
        if k == 0: x[i, rng.integers(5)] = np.nan
        elif k == 1: x[i, rng.integers(5)] = rng.choice([-np.inf, np.inf])
        elif k == 2: x[i, rng.integers(5)] = -x[i, 3] * rng.choice([0.0, 1.0])
        elif k == 3: x[i, 1] = 0.5 * x[i, 2]
        elif k == 4: ts[i] = ts[i - 1]
        elif k == 5: ts[i] = ts[i - rng.integers(1, 5)] - rng.integers(0, 2)
        elif k == 6: x[i:i + rng.integers(1, 5), :4] *= rng.choice([0.2, 3.0, 5.0])
        elif k == 7: x[i:, :4] *= rng.choice([0.3, 3.0])
        else: x[i, :4] *= 1.15
    return ts, x

@pytest.mark.parametrize("params", [dict(), dict(confirm=0), dict(confirm=1, warmup=0), dict(spike_z=5, warn_z=2, halflife=3, warmup=5)])
@pytest.mark.parametrize("seed", [0, 1])
def test_bar_guard_matches_reference_by_bar_and_by_block(seed, params):
    ts, x = _fuzz_bars(load_dataset(["sp500", "nasdaq"][seed]), seed)
    rows = [(int(t), *map(float, r)) for t, r in zip(ts, x)]
    ref, one, blk = _RefBarGuard(**params), BarGuard(**params), BarGuard(**params)
    want = [ref.check(*r) for r in rows]
    assert [one.check(*r) for r in rows] == want
    assert [BAR_KINDS[k] for i in range(0, len(ts), 50) for k in blk.check_block(ts[i:i + 50], x[i:i + 50])] == want
    state = lambda g: (g.rejected, g.warnings, g.last_ts, g.last_close, g.scale, g.n, g.jump_close, g.jump_n)
    assert state(one) == state(blk) == state(ref)
    caught = set(BAR_KINDS[1:]) - ({"spike"} if params.get("confirm") == 1 else set())  # confirm=1: every spike is a new level
    assert set(ref.rejected) == caught and ref.warnings.get("large_move", 0) > 0
