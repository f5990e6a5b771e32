"""The prediction service with real processes: it serves the registry's champion (sha256-verified), publishes a probability vector for every bar,
hot-swaps when the champion alias moves without missing or repeating a bar, scores the challenger in shadow, and refuses a tampered artifact."""
import json, os, shutil, signal, threading, time
from dataclasses import replace
import numpy as np
import pytest
from regime_nb.bus import Subscriber
from regime_nb.data import load_dataset
from regime_nb.features import FeatureSpec, compute_features
from regime_nb.supervisor import LiveConfig, Supervisor, model_spec, parity_check, replay_bars
from regime_nb.regimes import GMMRegime, HMMRegime
from regime_nb.registry import ArtifactIntegrityError, Registry
from regime_nb.store import Store

from test_live import PERMISSIVE

@pytest.fixture(scope="module")
def models_registry(tmp_path_factory):
    "A registry with version A (GMM(2), champion) and version B (HMM(2): a different model whose filter has memory, so warming matters); B has no alias."
    d = tmp_path_factory.mktemp("reg_models")
    sp = load_dataset("sp500")
    X = compute_features(sp).loc[:"2014"]
    a, b = GMMRegime(2).fit(X), HMMRegime(2, n_init=1).fit(X)
    with Registry(d) as reg:
        va = reg.register(a, spec=FeatureSpec.default(), data=sp.loc[:"2014"], symbol="sp500", note="A")
        vb = reg.register(b, spec=FeatureSpec.default(), data=sp.loc[:"2014"], symbol="sp500", note="B")
        reg.promote(va, "champion", reason="tests")
    return str(d), va, vb

@pytest.fixture
def registry(tmp_path, models_registry):
    "A private copy of the registry (tests move aliases and damage artifacts): (path, version A, version B)."
    src, va, vb = models_registry
    dst = tmp_path/"registry"; shutil.copytree(src, dst)
    return str(dst), va, vb

def cfg_for(tmp_path, registry, **kw):
    kw = {"data": "sp500", "start": "2015-01-01", "risk": PERMISSIVE, "heartbeat_ms": 1000, **kw}
    return LiveConfig(run_dir=str(tmp_path/"run"), store=str(tmp_path/"store.sqlite"), registry=registry, **kw)

def quiet(_): pass

class Tap(threading.Thread):
    "A subscriber of the prediction service's stream: every `regime.` message (ts, version, probs) in order, and its last stats."
    def __init__(self, cfg):
        super().__init__(daemon=True)
        self.cfg, self.ready, self.halt = cfg, threading.Event(), threading.Event()
        self.rows, self.first_seq, self.stats, self.gaps, self.error = [], None, {}, 0, None
    @property
    def n(self): return len(self.rows)
    def run(self):
        try:
            sub = Subscriber(self.cfg.endpoints["predictions"], topics=(f"regime.{self.cfg.symbol}", "stats.prediction"))
            self.ready.set()
            while not self.halt.is_set():
                m = sub.recv(timeout_ms=50)
                if m is None: continue
                if m.topic.startswith("stats."): self.stats = m.body; continue
                if self.first_seq is None: self.first_seq = m.seq
                self.rows += [(t, m.body["version"], p) for t, p in zip(m.body["ts"], m.body["probs"])]
            self.gaps = sub.gaps; sub.close()
        except Exception as e: self.error = e; self.ready.set()
    def wait_bars(self, n, timeout_s):
        t_end = time.time() + timeout_s
        while time.time() < t_end and self.n < n: time.sleep(0.005)
        return self.n >= n
    def finish(self):
        time.sleep(0.3); self.halt.set(); self.join(10)
        assert self.error is None, self.error
        assert self.first_seq == 1 and self.gaps == 0, ("the test's tap missed part of the stream", self.first_seq, self.gaps)

def start(cfg):
    "Start the tap, then the supervised live loop in a thread; return (tap, supervisor, thread, result dict)."
    tap = Tap(cfg); tap.start(); assert tap.ready.wait(10) and tap.error is None, tap.error
    sup, res = Supervisor(cfg, out=quiet), {}
    th = threading.Thread(target=lambda: res.update(stats=sup.run(120)), daemon=True); th.start()
    return tap, sup, th, res

def expected(cfg, reg_path, *versions):
    "Replayed bar times, which have finite features, and each version's batch `predict_proba` over the whole history (the service's filters are warmed on the bars before the replay), from the first replayed bar."
    bars, first = replay_bars(cfg)
    XA = compute_features(bars, model_spec(cfg))
    X = XA.iloc[first:]
    ts = X.index.as_unit("ns").asi8
    finite = np.isfinite(X.to_numpy()).all(1)
    with Registry(reg_path) as reg: P = {v: reg.load(v).predict_proba(XA).to_numpy()[first:] for v in versions}
    return ts, finite, P

def predictions(cfg):
    "The recorded predictions: version -> {ts: (probs, latency_us)}."
    out = {}
    for ts, v, probs, lat in Store(cfg.market_store).query("SELECT ts_ns, model_version, probs, latency_us FROM predictions WHERE symbol = ?", (cfg.symbol,)):
        out.setdefault(v, {})[ts] = (np.array(json.loads(probs)), lat)
    return out

def check_trading(cfg, sup, stats, n):
    t = stats["trading"]
    assert t["done"] and not sup.restarts, (t, sup.restarts)
    assert t["bars"] == n and t.get("unmatched", 0) == 0, ("trading did not process every bar exactly once", t["bars"], n, t.get("unmatched"))
    assert Store(cfg.store).query_one("SELECT COUNT(*) FROM equity")[0] == n

def test_champion_hot_swap_misses_and_repeats_no_bar(tmp_path, registry):
    reg_path, va, vb = registry
    cfg = cfg_for(tmp_path, reg_path, end="2017-12-31", speed=200.0)  # 755 bars, ~3.8 s
    ts, finite, P = expected(cfg, reg_path, va, vb)
    n = len(ts); assert finite.all()
    tap, sup, th, res = start(cfg)
    assert tap.wait_bars(150, 60), f"only {tap.n} predictions after 60 s"
    n_at_promote = tap.n
    with Registry(reg_path) as reg: assert reg.promote(vb, "champion", reason="hot swap test") == va
    th.join(120); tap.finish()
    assert not th.is_alive() and "stats" in res
    stats = res["stats"]
    # the stream: one probability vector per replayed bar, in order, none missing, none twice
    got_ts = [r[0] for r in tap.rows]
    assert got_ts == ts.tolist(), (len(got_ts), n, len(set(got_ts)))
    vers = np.array([r[1] for r in tap.rows])
    assert set(vers) == {va, vb}, set(vers)
    k = int(np.argmax(vers == vb))  # the first bar served by B
    assert (vers[:k] == va).all() and (vers[k:] == vb).all(), "the served version changed more than once"
    assert n_at_promote <= k < n, (n_at_promote, k, n)
    # the store: exactly one prediction per bar from the served model, A before the switch, B from it on
    rec = predictions(cfg)
    assert set(rec) == {va, vb}
    assert sorted(rec[va]) == ts[:k].tolist() and sorted(rec[vb]) == ts[k:].tolist(), ("recorded predictions per version do not split at the switch", len(rec[va]), len(rec[vb]), k, n)
    probs = np.array([r[2] for r in tap.rows])
    stored = np.array([rec[va if i < k else vb][t][0] for i, t in enumerate(ts)])
    assert np.abs(probs - stored).max() <= 1e-12
    # A equals its batch; B, swapped in mid-stream and warmed on the recent feature vectors, equals its batch from the first replayed bar
    assert np.abs(probs[:k] - P[va][:k]).max() <= 1e-9
    dB = np.abs(probs[k:] - P[vb][k:]).max(1)
    assert dB.max() <= 1e-9, f"B after the swap (bar {k}) differs from B's batch predict_proba: max {dB.max():.3g}, first bad bar offset {int(np.argmax(dB > 1e-9))}"
    assert np.abs(P[va][k:] - P[vb][k:]).max() > 1e-3  # A and B really are different models
    # the service counted the swap, serves B now; trading processed every bar
    sp = tap.stats or stats["prediction"]
    assert sp.get("swaps", 0) == 1 and sp["model_version"] == vb and not sp.get("swap_refused"), sp
    check_trading(cfg, sup, stats, n)

def test_challenger_in_shadow_is_recorded_and_trading_uses_only_the_champion(tmp_path, registry):
    reg_path, va, vb = registry
    with Registry(reg_path) as reg: reg.promote(vb, "challenger", reason="shadow test")
    cfg = cfg_for(tmp_path, reg_path, shadow_alias="challenger")  # as fast as possible: 1006 bars
    ts, finite, P = expected(cfg, reg_path, va, vb)
    n = len(ts); assert finite.all()
    tap, sup, th, res = start(cfg)
    th.join(150); tap.finish()
    assert not th.is_alive() and "stats" in res
    stats = res["stats"]
    rec = predictions(cfg)
    assert set(rec) == {va, vb}, set(rec)
    assert sorted(rec[va]) == ts.tolist() and sorted(rec[vb]) == ts.tolist(), ("every bar needs an A and a B prediction", len(rec[va]), len(rec[vb]), n)
    A = np.array([rec[va][t][0] for t in ts]); B = np.array([rec[vb][t][0] for t in ts])
    assert np.abs(A - P[va]).max() <= 1e-9
    dB = np.abs(B - P[vb]).max(1)
    assert dB.max() <= 1e-9, f"the shadow (B) differs from B's batch predict_proba: max {dB.max():.3g} at bar {int(np.argmax(dB))}"
    assert all(rec[va][t][1] is not None for t in ts) and all(rec[vb][t][1] is None for t in ts)  # A is the served model, B the shadow
    # the published stream (what trading consumes) is A only
    assert [r[0] for r in tap.rows] == ts.tolist()
    assert {r[1] for r in tap.rows} == {va}
    assert np.abs(np.array([r[2] for r in tap.rows]) - A).max() <= 1e-12
    assert (tap.stats or stats["prediction"])["model_version"] == va
    check_trading(cfg, sup, stats, n)
    # trading followed A: the live equity is the backtest of A, and not the backtest of B
    p = parity_check(cfg)
    assert p["bars_live"] == p["bars_backtest"] == n and p["trades_live"] == p["trades_backtest"] > 10 and p["max_abs_equity_diff"] <= 1e-9, p
    pb = parity_check(replace(cfg, model_alias="challenger"))
    assert pb["max_abs_equity_diff"] > 1e-4, pb

def test_a_tampered_artifact_is_refused_and_the_champion_keeps_serving(tmp_path, registry):
    reg_path, va, vb = registry
    cfg = cfg_for(tmp_path, reg_path, end="2017-12-31", speed=200.0)
    ts, finite, P = expected(cfg, reg_path, va)
    n = len(ts)
    with Registry(reg_path) as reg: path = reg.show(vb)["path"]
    tap, sup, th, res = start(cfg)
    assert tap.wait_bars(150, 60), f"only {tap.n} predictions after 60 s"
    # promotion verifies the artifact, so damage it after a verified promotion, with the prediction service paused so it cannot load it in between
    pid = sup.procs["prediction"].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        with Registry(reg_path) as reg: reg.promote(vb, "champion", reason="tamper test")
        data = bytearray(open(path, "rb").read()); data[len(data) // 2] ^= 0xFF
        open(path, "wb").write(bytes(data))
    finally: os.kill(pid, signal.SIGCONT)
    t_promoted = time.time_ns()
    with Registry(reg_path) as reg, pytest.raises(ArtifactIntegrityError): reg.promote(vb, "challenger")  # a damaged artifact cannot be promoted
    th.join(120); tap.finish()
    assert not th.is_alive() and "stats" in res
    stats = res["stats"]
    # A kept serving every bar; nothing from B was served or recorded
    assert [r[0] for r in tap.rows] == ts.tolist(), (tap.n, n)
    assert {r[1] for r in tap.rows} == {va}
    rec = predictions(cfg)
    assert set(rec) == {va} and sorted(rec[va]) == ts[finite].tolist()
    assert np.abs(np.array([r[2] for r in tap.rows]) - P[va]).max() <= 1e-9
    sp = tap.stats or stats["prediction"]
    assert sp.get("swap_refused", 0) == 1 and not sp.get("swaps") and sp["model_version"] == va, sp  # refused once, not on every poll
    a = Store(cfg.store).alerts()
    swap = a[(a.kind == "model_swap") & (a.ts_ns >= t_promoted - 10**9)]
    assert len(swap) == 1 and swap.service.eq("prediction").all(), a
    assert swap.message.str.contains("failed verification").all() and swap.message.str.contains(f"version {vb}").all(), swap.message.tolist()
    check_trading(cfg, sup, stats, n)
