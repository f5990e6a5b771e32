"""Features on real and long data: batch equals streaming, no drift, snapshot/restore across processes."""
import json, math, subprocess, sys, textwrap
import numpy as np, pandas as pd, pytest
from regime_nb.data import load_dataset
from regime_nb.simulate import simulate_regimes, simulate_ticks
from regime_nb.features import FeatureEngine, FeatureSpec, compute_features

OHLCV_FEATURES = [dict(kind="log_return", window=w) for w in (1, 5, 20)] + [
    dict(kind="realized_vol", window=5), dict(kind="realized_vol", window=20),
    dict(kind="ewm_vol", halflife=10), dict(kind="ewm_vol", halflife=60), dict(kind="ewm_downside_dev", halflife=20),
    dict(kind="ewm_sortino", halflife=20), dict(kind="zscore", window=20), dict(kind="rolling_skew", window=20),
    dict(kind="rolling_kurt", window=60), dict(kind="efficiency_ratio", window=10), dict(kind="rsi", window=14),
    dict(kind="atr", window=14), dict(kind="volume_zscore", window=20)]
OHLCV = FeatureSpec(OHLCV_FEATURES)
TICKS = FeatureSpec([dict(kind=k, window=100) for k in ("tick_rule", "order_flow_imbalance", "vwap_deviation", "spread")]
                    + [dict(kind="trade_interval", halflife=50)])


def inputs_matrix(eng, df):
    "The frame's inputs as rows for `update_array` (`ts` as epoch seconds)."
    cols = [df.index.as_unit("ns").asi8 / 1e9 if c == "ts" else df[c].to_numpy(np.float64) for c in eng.inputs]
    return np.ascontiguousarray(np.column_stack(cols))


def stream(eng, df):
    return np.array([eng.update_array(r) for r in inputs_matrix(eng, df)])


def assert_batch_equals_stream(df, spec, atol=1e-9):
    batch = compute_features(df, spec)
    live = stream(FeatureEngine(spec), df)
    b = batch.to_numpy()
    for j, col in enumerate(spec.columns):
        wu = spec.warmup[col]
        assert np.isnan(live[:wu, j]).all() and np.isnan(b[:wu, j]).all(), col
        np.testing.assert_array_equal(np.isnan(live[wu:, j]), np.isnan(b[wu:, j]), err_msg=col)
        diff = np.nanmax(np.abs(live[wu:, j] - b[wu:, j])) if wu < len(df) else 0.0
        assert diff <= atol, f"{col}: max |batch - stream| = {diff}"
    return batch


@pytest.fixture(scope="module")
def sim():
    return simulate_regimes(1_000_000, freq="1min", seed=1)


def test_sp500_batch_equals_streaming():
    sp = load_dataset("sp500")
    sp = sp.join(load_dataset("vix")["close"].rename("vix")).join(load_dataset("nasdaq")["close"].rename("nasdaq_close"))
    spec = OHLCV + [dict(kind="exog", column="vix"), dict(kind="exog", column="vix", transform="log"),
                    dict(kind="corr", window=20, column="nasdaq_close")]
    f = assert_batch_equals_stream(sp, spec)
    assert f["realized_vol_20"].iloc[20:].notna().all()
    assert f["exog_vix"].notna().sum() == sp["vix"].notna().sum()
    ref = np.log(sp.close).diff().rolling(20).std()
    np.testing.assert_allclose(f["realized_vol_20"][20:], ref[20:], rtol=1e-9)


def test_million_bars_batch_equals_streaming(sim):
    assert_batch_equals_stream(sim, OHLCV)


def test_ticks_batch_equals_streaming():
    assert_batch_equals_stream(simulate_ticks(200_000, seed=3), TICKS)


def test_no_drift_over_millions_of_bars(sim):
    "Rolling sums stay exact: the last values equal a from-scratch numpy computation over the last window."
    w = 20
    spec = FeatureSpec([dict(kind="realized_vol", window=w), dict(kind="zscore", window=w)])
    last = compute_features(sim, spec).iloc[-1]
    r = np.diff([math.log(v) for v in sim.close.to_numpy()[-w - 1:]])  # libm log, as the kernels' channel
    assert abs(last["realized_vol_20"] / np.std(r, ddof=1) - 1) <= 1e-12
    c = sim.close.to_numpy()[-w:]
    assert abs(last["zscore_20"] - (c[-1] - c.mean()) / np.std(c, ddof=1)) <= 1e-12 * max(1.0, abs(last["zscore_20"]))
    # a level of 1e8 with cent moves over 1.2M bars: naive running sums of squares would have lost every digit
    rng = np.random.default_rng(0)
    n = 1_200_000
    x = 1e8 + np.cumsum(0.01 * rng.standard_normal(n))
    bars = pd.DataFrame({"close": x}, index=pd.date_range("2000", periods=n, freq="1min", tz="UTC", name="ts"))
    f = compute_features(bars, spec).iloc[-1]
    r = np.diff([math.log(v) for v in x[-w - 1:]])
    assert abs(f["realized_vol_20"] / np.std(r, ddof=1) - 1) <= 1e-12
    c = x[-w:]
    assert abs(f["zscore_20"] - (c[-1] - c.mean()) / np.std(c, ddof=1)) <= 1e-9


def test_snapshot_restore_in_fresh_process(sim, tmp_path):
    "A snapshot written by one process resumes exactly in another."
    bars = sim.iloc[:300_000]
    cut, spec = 250_000, OHLCV
    eng = FeatureEngine(spec)
    eng.warm(bars.iloc[:cut])
    (tmp_path / "snap.json").write_text(json.dumps(eng.snapshot()))
    np.save(tmp_path / "rest.npy", inputs_matrix(eng, bars.iloc[cut:]))
    code = textwrap.dedent(f"""
        import json, numpy as np
        from regime_nb.features import FeatureEngine
        eng = FeatureEngine.restore(json.load(open({str(tmp_path / 'snap.json')!r})))
        assert eng.n_bars == {cut}
        np.save({str(tmp_path / 'out.npy')!r}, np.array([eng.update_array(r) for r in np.load({str(tmp_path / 'rest.npy')!r})]))
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    resumed = np.load(tmp_path / "out.npy")
    uninterrupted = compute_features(bars, spec).to_numpy()[cut:]
    np.testing.assert_array_equal(resumed, uninterrupted)
    # and the same as the engine that was never stopped
    np.testing.assert_array_equal(stream(eng, bars.iloc[cut:cut + 1000]), uninterrupted[:1000])


@pytest.mark.parametrize("data", ["sp500", "ticks"])
def test_update_rows_equals_update_array(data):
    "Blocks of rows of random sizes (0 to 100, as live messages) give the bits of `update_array` row by row."
    if data == "sp500":
        df = load_dataset("sp500")
        df = df.join(load_dataset("vix")["close"].rename("vix")).join(load_dataset("nasdaq")["close"].rename("nasdaq_close"))
        spec = OHLCV + [dict(kind="exog", column="vix", transform="log"), dict(kind="corr", window=20, column="nasdaq_close")]
    else: df, spec = simulate_ticks(20_000, seed=5), TICKS  # `ts` among the inputs
    one, blk = FeatureEngine(spec), FeatureEngine(spec)
    rows = inputs_matrix(one, df)
    rowwise = stream(one, df)
    cuts = np.cumsum(np.random.default_rng(0).integers(0, 101, len(rows)))
    cuts = np.concatenate([[0], cuts[cuts < len(rows)], [len(rows)]])
    blocks = np.concatenate([blk.update_rows(rows[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
    np.testing.assert_array_equal(blocks, rowwise)
    np.testing.assert_array_equal(blk.state, one.state)
    assert blk.n_bars == one.n_bars == len(rows)
    np.testing.assert_array_equal(blk.update_rows(rows[-50:]), stream(one, df.iloc[-50:]))  # and they go on together
