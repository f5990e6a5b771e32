"""Backtest engine against independent references: pandas stats on the real S&P 500, a lookahead guard, 7.5M bars."""
import math, time
import numpy as np, pandas as pd, pytest
from regime_nb.backtest import (BacktestError, backtest, check_no_lookahead, engine_params, infer_periods_per_year,
                                simulate_nb)
from regime_nb.data import load_dataset
from regime_nb.simulate import simulate_regimes

# ---------------------------------------------------------------- (1) stats against plain pandas

def reference_always(close, target, costs_bps, slippage_bps, financing_bps, ppy):
    """Equity, exposure and per-trade exposure changes of rebalancing to `target` at every next close,
    written in exposure space (fractions of equity), not in units and cash as the engine is."""
    k, s, f = costs_bps / 1e4, slippage_bps / 1e4, financing_bps / 1e4 / ppy
    r = close.pct_change().to_numpy()
    E, x = [1.0], [0.0]
    changes = []
    for t in range(1, len(close)):
        e, xp = E[-1], x[-1]
        a = e * (1 + xp * r[t]) + e * (1 - xp) * f          # value at this close: the position's move and financing on cash
        x_pre = xp * e * (1 + r[t]) / a                       # the exposure drifted with the price
        w = target[t - 1]
        d = w - x_pre                                          # exposure to trade, at the close price
        if abs(d) > 1e-12:                                     # the engine never trades rounding dust
            sgn = 1.0 if d > 0 else -1.0
            e_new = a * (1 - abs(d) * s - abs(d) * (1 + sgn * s) * k)  # slippage, then proportional cost on the filled notional
            changes.append(d)
        else:
            e_new = a
        E.append(e_new)
        x.append(w * a / e_new)
    return pd.Series(E, index=close.index), pd.Series(x, index=close.index), np.array(changes)


def pandas_stats(ret, pos, changes, ppy=252):
    "Every statistic of `compute_stats`, written directly in pandas."
    n = len(ret)
    eq = (1 + ret).cumprod()
    total = eq.iloc[-1] - 1
    dd = 1 - eq / eq.cummax().clip(lower=1.0)
    under = dd > 0
    runs = (under != under.shift()).cumsum()
    ep = pd.DataFrame(dict(under=under, dd=dd, runs=runs)).groupby("runs").agg(under=("under", "first"), size=("dd", "size"), depth=("dd", "max"))
    ep = ep[ep.under]
    held = pos != 0
    m = held | held.shift(1, fill_value=False)
    rm = ret[m]
    ann = (1 + total) ** (ppy / n) - 1
    daily = (1 + ret).groupby(ret.index.normalize()).prod() - 1
    return dict(total_return=total, annual_return=ann, annual_volatility=ret.std() * math.sqrt(ppy),
                sharpe=ret.mean() / ret.std() * math.sqrt(ppy),
                sortino=ret.mean() / math.sqrt((ret.clip(upper=0) ** 2).mean()) * math.sqrt(ppy),
                max_drawdown=dd.max(), max_drawdown_duration=ep["size"].max(), avg_drawdown=ep.depth.mean(),
                calmar=ann / dd.max(), win_rate=(rm > 0).mean(), profit_factor=rm[rm > 0].sum() / -rm[rm < 0].sum(),
                turnover=np.abs(changes).sum() * ppy / n, exposure=held.mean(), n_trades=len(changes),
                daily_mean=daily.mean(), daily_vol=daily.std(), n_bars=n)


def test_stats_equal_an_independent_pandas_computation_on_the_sp500():
    sp = load_dataset("sp500")
    c = sp.close
    target = np.where(c.rolling(20).mean() > c.rolling(100).mean(), 1.0, -0.5)
    target[:99] = 0.0
    res = backtest(sp, target, costs_bps=5, slippage_bps=2, financing_bps=200, rebalance="always")
    E, x, changes = reference_always(c, target, 5, 2, 200, 252)
    np.testing.assert_allclose(res.equity.to_numpy(), E.to_numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.positions.to_numpy(), x.to_numpy(), rtol=0, atol=1e-10)
    ret = E.pct_change().fillna(0.0)
    np.testing.assert_allclose(res.returns.to_numpy(), ret.to_numpy(), rtol=0, atol=1e-10)
    ref = pandas_stats(ret, x.round(12), changes)
    assert list(res.stats) == list(ref)
    for k, v in ref.items():
        assert res.stats[k] == pytest.approx(v, abs=1e-10, rel=0), k
    assert res.stats["n_trades"] > 1000 and 0.9 < res.stats["exposure"] < 1  # fully long needs no rebalancing: cash stays 0
    mt = res.monthly_returns()
    ref_m = ((1 + ret).groupby([ret.index.year, ret.index.month]).prod() - 1).unstack()
    np.testing.assert_allclose(mt.iloc[:, :12].to_numpy(), ref_m.to_numpy(), rtol=0, atol=1e-12)
    ref_y = (1 + ret).groupby(ret.index.year).prod() - 1
    np.testing.assert_allclose(mt["Year"].to_numpy(), ref_y.to_numpy(), rtol=0, atol=1e-12)


def test_buy_and_hold_stats_match_pandas():
    sp = load_dataset("sp500")
    res = backtest(sp, pd.Series(0.0, index=sp.index))
    bh = res.benchmark / res.benchmark.iloc[0]
    np.testing.assert_allclose(bh.iloc[1:].to_numpy(), (sp.close / sp.close.iloc[1]).iloc[1:].to_numpy(), rtol=1e-12)
    ret = bh.pct_change().fillna(0.0)
    assert res.benchmark_stats["sharpe"] == pytest.approx(ret.mean() / ret.std() * math.sqrt(252), abs=1e-10)
    assert res.benchmark_stats["n_trades"] == 1 and res.stats["n_trades"] == 0 and res.stats["total_return"] == 0


def test_intraday_daily_figures_and_periods_per_year():
    df = simulate_regimes(20_000, seed=5)
    assert infer_periods_per_year(df.index) == pytest.approx(525960)
    res = backtest(df, np.sign(df.close.diff(30)).fillna(0.0), costs_bps=1)
    daily = (1 + res.returns).groupby(res.returns.index.normalize()).prod() - 1
    assert len(daily) == 14
    assert res.stats["daily_mean"] == pytest.approx(daily.mean(), abs=1e-12)
    assert res.stats["daily_vol"] == pytest.approx(daily.std(), abs=1e-12)

# ---------------------------------------------------------------- (2) lookahead guard

def random_walk(seed, n=2000):
    "Gapless random-walk bars (open = previous close), daily."
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    idx = pd.date_range("2000-01-03", periods=n, freq="D", tz="UTC", name="ts")
    return pd.DataFrame(dict(open=np.r_[100.0, c[:-1]], close=c), index=idx)


def causal_signals(bars):
    c = bars.close
    return dict(last_return=np.sign(c.pct_change()).fillna(0.0),
                ma_cross=pd.Series(np.where(c.rolling(10).mean() > c.rolling(50).mean(), 1.0, -1.0), index=c.index),
                momentum=np.sign(c.pct_change(20)).fillna(0.0),
                zscore=((c - c.rolling(20).mean()) / c.rolling(20).std()).clip(-2, 2).fillna(0.0))


def test_no_edge_from_past_data_on_random_walks_and_future_signals_are_caught():
    sharpes = {k: [] for k in ("last_return", "ma_cross", "momentum", "zscore")}
    peek_close, peek_open, same_bar, ma_peek = [], [], [], []
    for seed in range(50):
        bars = random_walk(seed)
        r_next = bars.close.pct_change().shift(-1).fillna(0.0)
        for name, sig in causal_signals(bars).items():
            sharpes[name].append(backtest(bars, sig, benchmark=False).stats["sharpe"])
            assert check_no_lookahead(bars, sig)["ok"], (seed, name)
            future = sig.shift(-1).fillna(0.0)                 # the same signal, one bar into the future
            chk = check_no_lookahead(bars, future)
            if name == "ma_cross":                             # a crossover taken one bar early knows little: too little to catch...
                ma_peek.append(backtest(bars, future, execution="next_open", benchmark=False).stats["sharpe"])
            else:
                assert not chk["ok"] and max(chk["ic"], chk["ic_change"]) > 0.2, (seed, name, chk)
            if name == "last_return":
                peek_close.append(backtest(bars, future, benchmark=False).stats["sharpe"])
                peek_open.append(backtest(bars, future, execution="next_open", benchmark=False).stats["sharpe"])
                pnl = future * r_next                          # what filling at the signal bar's own close would earn
                same_bar.append(pnl.mean() / pnl.std() * math.sqrt(252))
    for name, s in sharpes.items():
        s = np.array(s)
        assert abs(s.mean()) < 0.3, (name, s.mean())
        assert abs(s.mean()) / (s.std(ddof=1) / math.sqrt(len(s))) < 3, (name, s.mean(), s.std())
        assert 0.25 < (s > 0).mean() < 0.75, (name, (s > 0).mean())
    # next-close execution trades a bar after the peek, so the peek earns nothing there...
    assert abs(np.mean(peek_close)) < 0.3, np.mean(peek_close)
    # ...while a fill at the signal bar's close (or the next open of gapless bars) would earn a fortune
    assert min(same_bar) > 20 and min(peek_open) > 20, (min(same_bar), min(peek_open))
    # ...and too little to profit from much, even filled at the open right after the peek
    assert np.mean(ma_peek) < 1.5, np.mean(ma_peek)


def test_lookahead_check_passes_a_real_strategy_on_the_sp500():
    sp = load_dataset("sp500")
    c = sp.close
    ok = check_no_lookahead(sp, (c.rolling(50).mean() > c.rolling(200).mean()).astype(float))
    assert ok["ok"] and abs(ok["ic"]) < 0.05, ok
    leak = check_no_lookahead(sp, np.sign(c.pct_change().shift(-1)).fillna(0.0))
    assert not leak["ok"] and "ic=" in leak["detail"]

# ---------------------------------------------------------------- (3) 7.5M bars against a plain Python loop

def python_engine(open_, close, target, vol, exec_at_open, costs_bps, fixed_cost, commission, slippage_bps, slippage_vol,
                  max_leverage, financing_per_bar, always, min_trade, init_cash=1.0):
    "The engine's rules as a plain Python loop over floats."
    cash, units, last = init_cash, 0.0, None
    equity, held, trades = [], [], []
    for t in range(len(close)):
        if t > 0:
            cash = cash + cash * financing_per_bar
            tg = target[t - 1]
            if not math.isnan(tg) and (always or tg != last):
                price = open_[t] if exec_at_open else close[t]
                e = cash + units * price
                w = max(-max_leverage, min(max_leverage, tg))
                want = w * e / price if e > 0 else 0.0
                du = want - units
                if abs(du * price) > max(min_trade, 1e-12 * abs(e)):
                    v = vol[t - 1]
                    slip = slippage_bps / 1e4 + (slippage_vol * v if not math.isnan(v) else 0.0)
                    fill = price * (1 + slip) if du > 0 else price * (1 - slip)
                    cost = abs(du * fill) * costs_bps / 1e4 + fixed_cost + commission * abs(du)
                    cash -= du * fill + cost
                    units = want
                    trades.append((t, du, price, fill, cost))
                last = tg
        equity.append(cash + units * close[t])
        held.append(units)
    return np.array(equity), np.array(held), trades


@pytest.fixture(scope="module")
def big():
    df = simulate_regimes(7_500_000, seed=11)
    c = df.close.to_numpy()
    mom = np.full(len(c), np.nan)
    mom[240:] = c[240:] / c[:-240] - 1
    target = np.where(mom > 0.001, 2.5, np.where(mom < -0.001, -0.8, 0.3))  # 2.5 is clipped to max_leverage
    target[np.isnan(mom)] = np.nan
    target[::997] = np.nan                                                # NaN keeps the position
    vol = pd.Series(c).pct_change().rolling(30).std().to_numpy()
    return df, target, vol


def test_seven_and_a_half_million_bars_match_a_python_loop(big):
    df, target, vol = big
    kw = dict(costs_bps=1.0, slippage_bps=0.5, slippage_vol=0.25, fixed_cost=1e-6, commission_per_unit=1e-7,
              execution="next_open", max_leverage=2.0, financing_bps=300, min_trade=1e-4, vol=vol)
    res = backtest(df, target, **kw)        # warm: loads the compiled kernels
    o, c = df.open.to_numpy(), df.close.to_numpy()
    prm = engine_params(True, 1.0, 1e-6, 1e-7, 0.5, 0.25, 2.0, 300, 525960.0, False, 1e-4)
    from regime_nb.backtest import _trade_capacity
    cap = _trade_capacity(target, False)
    times = []
    for _ in range(3):
        t0 = time.perf_counter(); out = simulate_nb(o, c, target, vol, prm, 1.0, cap); times.append(time.perf_counter() - t0)
    t0 = time.perf_counter(); res = backtest(df, target, **kw); t_full = time.perf_counter() - t0
    print(f"\n7.5M bars: engine kernel {min(times) * 1e3:.0f} ms (best of 3), backtest() with stats {t_full * 1e3:.0f} ms, "
          f"{len(res.trades)} trades")
    assert min(times) < 1.0, times
    np.testing.assert_array_equal(out[0], res.equity.to_numpy())
    assert np.isfinite(res.equity).all() and len(res.trades) > 10_000
    m = 20_000
    eq, units, trades = python_engine(o[:m], c[:m], target[:m], vol[:m], True, 1.0, 1e-6, 1e-7, 0.5, 0.25, 2.0,
                                      300 / 1e4 / 525960.0, False, 1e-4)
    np.testing.assert_allclose(res.equity.to_numpy()[:m], eq, rtol=1e-12)
    np.testing.assert_allclose(res.units.to_numpy()[:m], units, rtol=1e-12, atol=1e-15)
    tr = res.trades[res.trades.ts < df.index[m]]
    assert len(tr) == len(trades) > 50
    ref = np.array(trades)
    np.testing.assert_array_equal(df.index.get_indexer(tr.ts), ref[:, 0].astype(int))
    np.testing.assert_allclose(tr[["units", "intended_price", "fill_price", "cost"]].to_numpy(), ref[:, 1:], rtol=1e-12)

# ---------------------------------------------------------------- bad input

def test_bad_input_is_named():
    bars = random_walk(0, 50)
    with pytest.raises(BacktestError, match="execution='next_tick'"): backtest(bars, np.zeros(50), execution="next_tick")
    with pytest.raises(BacktestError, match="slippage_bps=-1"): backtest(bars, np.zeros(50), slippage_bps=-1)
    with pytest.raises(BacktestError, match="index does not match"): backtest(bars, pd.Series(0.0, index=bars.index[::-1]))
    with pytest.raises(BacktestError, match="close has 1 NaN"): backtest(bars.assign(close=bars.close.where(bars.index != bars.index[7])), np.zeros(50))
    with pytest.raises(BacktestError, match="targets\\(inputs\\) method"): backtest(bars, "long")
