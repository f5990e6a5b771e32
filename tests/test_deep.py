"""The Transformer regime classifier (the `deep` extra): causal, deterministic for a seed, registered and verified like the other models,
online equal to batch, and served by the live loop like them."""
import shutil
import msgpack
import numpy as np, pandas as pd
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the deep extra's tests need pip install 'regime-nb[deep]'")

from regime_nb.data import load_dataset
from regime_nb.deep import TransformerRegime, deep_spec
from regime_nb.features import compute_features
from regime_nb.registry import ArtifactIntegrityError, Registry
from regime_nb.supervisor import Supervisor, parity_check

from test_live import quiet
from test_live_models import cfg_for, expected, predictions

FAST = dict(max_epochs=3, patience=2, progress=False)  # a few epochs: what is under test is the plumbing, not the fit's quality
TRAIN = ("2011", "2014")

@pytest.fixture(scope="module")
def data():
    "The S&P 500 and the design's features over all of it."
    sp = load_dataset("sp500")
    return sp, compute_features(sp, deep_spec(sp))

@pytest.fixture(scope="module")
def model(data):
    "A Transformer fitted on 2011-2014 (k-means teacher on volatility)."
    _, X = data
    return TransformerRegime(**FAST).fit(X.loc[TRAIN[0]:TRAIN[1]])

def test_appending_or_changing_future_bars_leaves_past_probabilities_unchanged(data, model):
    sp = data[0].loc["2012":]
    full = model.predict_proba(compute_features(sp, deep_spec(sp))).to_numpy()
    cut = int(sp.index.searchsorted(pd.Timestamp("2016-06-30", tz="UTC")))
    past = model.predict_proba(compute_features(sp.iloc[:cut], deep_spec(sp))).to_numpy()  # what was known at the cut
    assert np.array_equal(past, full[:cut], equal_nan=True)
    bad = sp.copy()
    later = bad.index >= bad.index[cut]
    bad.loc[later, ["open", "high", "low", "close"]] = bad.loc[later, ["open", "high", "low", "close"]].to_numpy() * np.exp(np.random.default_rng(0).normal(0, 0.05, (later.sum(), 1)))
    changed = model.predict_proba(compute_features(bad, deep_spec(bad))).to_numpy()
    assert np.array_equal(changed[:cut], full[:cut], equal_nan=True)
    assert np.abs(changed[cut + 60:] - full[cut + 60:]).max() > 0.1  # the scrambled future does move the later probabilities

def test_the_same_seed_gives_the_same_model_from_training_data_alone_and_another_seed_another(data, model):
    sp, X = data
    Xt = compute_features(sp.loc[:TRAIN[1]], deep_spec(sp)).loc[TRAIN[0]:]  # features of bars up to the training window's end only
    again = TransformerRegime(**FAST).fit(Xt)
    assert sorted(again.weights_) == sorted(model.weights_)
    assert all(np.array_equal(again.weights_[k], model.weights_[k]) for k in model.weights_)
    recent = X.loc["2015":"2016"]
    assert np.array_equal(again.predict_proba(recent).to_numpy(), model.predict_proba(recent).to_numpy(), equal_nan=True)
    other = TransformerRegime(**FAST, random_state=1).fit(Xt)
    assert not np.array_equal(other.weights_["head.weight"], model.weights_["head.weight"])

def test_save_load_and_sha256_verification_through_the_registry(tmp_path, data, model):
    sp, X = data
    with Registry(tmp_path/"reg") as reg:
        v = reg.register(model, spec=deep_spec(sp), data=sp.loc[TRAIN[0]:TRAIN[1]], symbol="sp500")
        assert reg.verify(v) == v
        back, meta = reg.load_with_meta(v)
        assert meta["model_class"] == "regime_nb.deep.TransformerRegime" and meta["feature_spec"] == deep_spec(sp).to_dict()
        recent = X.loc["2015":]
        assert np.array_equal(back.predict_proba(recent).to_numpy(), model.predict_proba(recent).to_numpy(), equal_nan=True)
        path = reg.show(v)["path"]
        raw = bytearray(open(path, "rb").read())
        raw[len(raw) // 3] ^= 0xFF
        open(path, "wb").write(bytes(raw))
        with pytest.raises(ArtifactIntegrityError, match="failed verification"): reg.load(v)
        with pytest.raises(ArtifactIntegrityError, match="failed verification"): reg.verify(v)

def test_the_online_path_equals_the_batch_path_and_resumes_from_a_snapshot(data, model):
    sp = data[0].loc["2009":]
    X = compute_features(sp, deep_spec(sp))  # a stream that starts with the features' warm-up
    A, ref = X.to_numpy(), model.predict_proba(X).to_numpy()
    sc = model.online()
    warm = sc.update_block(A[:1500])  # as the prediction service warms a served model on the history
    rows = np.array([sc.update(x) for x in A[1500:1800]])
    resumed = model.online().restore(msgpack.unpackb(msgpack.packb(sc.snapshot())))  # the state a restarted service reads back
    rest = resumed.update_block(A[1800:])
    online = np.vstack([warm, rows, rest])
    assert np.isfinite(online[100:]).all() and np.isnan(online[:20]).all()
    assert np.nanmax(np.abs(online - ref)) <= 1e-6
    assert np.array_equal(online, ref, equal_nan=True)  # in fact to the bit

@pytest.fixture(scope="module")
def deep_registry(tmp_path_factory, data, model):
    "A registry whose champion is the Transformer, with the design's feature spec."
    sp, _ = data
    d = tmp_path_factory.mktemp("reg_deep")
    with Registry(d) as reg:
        reg.promote(reg.register(model, spec=deep_spec(sp), data=sp.loc[TRAIN[0]:TRAIN[1]], symbol="sp500"), "champion", reason="tests")
    return str(d)

def test_a_short_replay_through_the_live_loop_serves_the_transformer_and_trades_like_the_backtest(tmp_path, deep_registry):
    reg = tmp_path/"registry"; shutil.copytree(deep_registry, reg)
    cfg = cfg_for(tmp_path, str(reg), start="2018-01-01")
    with Registry(reg) as r: v = r.resolve("champion")
    ts, finite, P = expected(cfg, str(reg), v)
    sup = Supervisor(cfg, out=quiet)
    stats = sup.run(180)
    assert stats["trading"]["done"] and not sup.restarts, (stats, sup.restarts)
    rec = predictions(cfg)[v]
    assert sorted(rec) == ts.tolist() and finite.all()  # one prediction per replayed bar
    live = np.array([rec[t][0] for t in ts])
    assert np.abs(live - P[v]).max() <= 1e-9, np.abs(live - P[v]).max()  # the served scorer, warmed on the history, equals batch predict_proba
    p = parity_check(cfg)
    assert p["bars_live"] == p["bars_backtest"] == len(ts) == 251, p
    assert p["trades_live"] == p["trades_backtest"] > 0, p
    assert p["max_abs_equity_diff"] <= 1e-9 and p["fills_equity_diff"] <= 1e-9 and p["blocked"] == {}, p

def test_kill_9_of_the_prediction_service_serving_the_transformer_resumes_from_its_window_and_trades_like_the_backtest(tmp_path, deep_registry):
    "Killed twice mid-replay, the prediction service resumes its scorer from the logged buffer of the last 59 rows: every bar gets the batch path's regime, once."
    from test_live import kill_prediction_during_replay
    reg = tmp_path/"registry"; shutil.copytree(deep_registry, reg)
    cfg = cfg_for(tmp_path, str(reg), start="2017-01-01", speed=30.0, heartbeat_ms=3000)  # 502 bars in ~17 s; a restart shorter than three heartbeats halts nothing
    with Registry(reg) as r: v = r.resolve("champion")
    ts, _, P = expected(cfg, str(reg), v)
    sup, stats, st = kill_prediction_during_replay(cfg, 2, seed=5, every_bars=100); t = stats["trading"]
    assert t["done"] and t.get("undecided", 0) == 0, t
    rec = predictions(cfg)[v]  # the prediction records are written off the hot path: a kill -9 may lose the last few before they commit
    got = np.array([x in rec for x in ts])
    assert got.sum() > len(ts) // 2 and np.abs(np.array([rec[x][0] for x in ts[got]]) - P[v][got]).max() <= 1e-9
    assert tuple(st.query_one("SELECT COUNT(*), COUNT(DISTINCT ts_ns) FROM equity")) == (len(ts), len(ts))  # every bar decided, once
    p = parity_check(cfg)
    assert p["bars_live"] == p["bars_backtest"] == len(ts) and p["trades_live"] == p["trades_backtest"] > 0, p
    print(f"prediction killed 2 times: {len(ts) - got.sum()} of {len(ts)} prediction records lost with it, every bar decided like the backtest")
    assert p["max_abs_equity_diff"] <= 1e-9 and p["blocked"] == {}, p
