"""The prediction service with real processes: it serves the registry's champion (sha256-verified), publishes a probability vector for every bar,
hot-swaps when the champion alias moves without missing or repeating a bar, scores the challenger in shadow, and refuses a tampered artifact."""
import json, os, shutil, signal, threading, time
from pathlib import Path
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
from regime_nb.jobs import read_outcome, runs

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

def test_challenger_in_shadow_is_recorded_and_trading_uses_only_the_champion(tmp_path, registry, cli):
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
    r = cli("report", "shadow", "--store", cfg.store, "--registry", reg_path)  # the two books side by side, as a user asks for them
    assert r.returncode == 0, r.stderr
    assert f"champion v{va} against challenger v{vb} in shadow" in r.stdout and f"champion (v{va})" in r.stdout and f"challenger (v{vb})" in r.stdout, r.stdout
    rows = [l.split() for l in r.stdout.splitlines()[2:]]
    assert [int(float(x[2])) for x in rows] == [n, n], r.stdout  # every bar both scored
    assert [x[-1] for x in rows] == ["engine", "live"], r.stdout  # the challenger's book is the one the loop recorded
    assert (tap.stats or stats["prediction"])["model_version"] == va
    check_trading(cfg, sup, stats, n)
    # trading followed A: the live equity is the backtest of A, and not the backtest of B
    p = parity_check(cfg)
    assert p["bars_live"] == p["bars_backtest"] == n and p["trades_live"] == p["trades_backtest"] > 10 and p["max_abs_equity_diff"] <= 1e-9, p
    pb = parity_check(replace(cfg, model_alias="challenger"))
    assert pb["max_abs_equity_diff"] > 1e-4, pb
    # the live shadow book: B's probabilities traded bar by bar in the trading service and recorded, against the engine's backtest of B's recorded predictions on the same bars
    from regime_nb.gates import shadow_book
    from regime_nb.shadow import live_book
    from regime_nb.strategies import make_strategy
    lb = live_book(Store(cfg.store), cfg.symbol, vb)
    off = shadow_book(Store(cfg.market_store), cfg.symbol, vb, make_strategy(cfg.strategy), costs_bps=cfg.costs_bps)
    assert lb is not None and len(lb.equity) == n and lb.equity.index.equals(off.equity.index), (None if lb is None else len(lb.equity), n)
    assert np.abs(lb.equity.to_numpy() - off.equity.to_numpy()).max() <= 1e-9, np.abs(lb.equity.to_numpy() - off.equity.to_numpy()).max()
    assert len(off.trades) > 10 and lb.stats["n_trades"] == len(off.trades) and abs(lb.stats["sharpe"] - off.stats["sharpe"]) <= 1e-9
    assert stats["trading"].get("shadow_bars") == n, stats["trading"]

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

def decided_by(cfg, tap):
    "Each recorded decision with the version and the probabilities that decided it: those of the bar before the bar it executes at."
    pos = {r[0]: i for i, r in enumerate(tap.rows)}
    dec = Store(cfg.store).query_df("SELECT ts_ns, target, regime, model_version FROM decisions WHERE symbol = ? ORDER BY ts_ns", (cfg.symbol,))
    return [(row.ts_ns, row.target, row.regime, *tap.rows[pos[row.ts_ns] - 1][1:]) for row in dec.itertuples() if pos.get(row.ts_ns, 0) > 0]

def test_a_promoted_version_trades_its_registered_strategy_from_its_first_bar_and_an_unfit_one_is_refused(tmp_path, registry):
    reg_path, va, vb = registry
    sp = load_dataset("sp500"); X = compute_features(sp).loc[:"2014"]
    new_exp = [0.4, 1.2]
    with Registry(reg_path) as reg:  # B again, registered with exposures of its own; and a three-regime model with none
        vc = reg.register(reg.load(vb), spec=FeatureSpec.default(), metrics={"strategy": {"kind": "RegimeExposure", "exposures": new_exp}}, note="B with its strategy")
        v3 = reg.register(GMMRegime(3).fit(X), spec=FeatureSpec.default(), note="three regimes, no strategy")
    cfg = cfg_for(tmp_path, reg_path, end="2017-12-31", speed=150.0)  # 755 bars, ~5 s; the loop trades [1, 0]
    ts, finite, _ = expected(cfg, reg_path, va)
    n = len(ts)
    tap, sup, th, res = start(cfg)
    assert tap.wait_bars(100, 60), f"only {tap.n} predictions after 60 s"
    with Registry(reg_path) as reg: reg.promote(v3, "champion", reason="unfit")
    time.sleep(1.5)  # the prediction service polls the alias every 0.5 s
    with Registry(reg_path) as reg: reg.promote(vc, "champion", reason="its own strategy")
    n_at_promote = tap.n
    th.join(120); tap.finish()
    assert not th.is_alive() and "stats" in res
    stats = res["stats"]
    assert [r[0] for r in tap.rows] == ts.tolist(), (tap.n, n)  # no bar missed or repeated
    vers = np.array([r[1] for r in tap.rows])
    assert set(vers) == {va, vc}, set(vers)  # the unfit version was never served
    k = int(np.argmax(vers == vc)); assert (vers[:k] == va).all() and (vers[k:] == vc).all() and n_at_promote - 5 <= k < n - 100, (k, n_at_promote, n)
    a = Store(cfg.store).alerts()
    refused = a[a.kind == "model_swap"]
    assert len(refused) == 1 and f"version {v3}" in refused.message.iloc[0] and "does not fit the strategy the loop trades now" in refused.message.iloc[0], refused.message.tolist()
    changed = a[a.kind == "strategy_changed"]
    assert len(changed) == 1 and changed.level.iloc[0] == "info" and str(new_exp) in changed.message.iloc[0], a[["kind", "message"]]
    # every decision follows the strategy of the version whose probabilities decided it: [1, 0] for A, B's registered exposures after the swap
    exps = {va: [1.0, 0.0], vc: new_exp}
    rows = decided_by(cfg, tap)
    after = [r for r in rows if r[3] == vc]
    assert len(after) >= 5 and len(rows) - len(after) >= 3, (len(rows), len(after))
    for t, target, regime, v, probs in rows:
        assert regime == int(np.argmax(probs)) and target == exps[v][regime], (t, target, regime, v, probs)
    sp_ = tap.stats or stats["prediction"]
    assert sp_.get("swaps") == 1 and sp_.get("swap_refused") == 1 and sp_["model_version"] == vc, sp_
    assert stats["trading"].get("strategy_changes") == 1, stats["trading"]
    check_trading(cfg, sup, stats, n)

def test_the_retrain_job_promotes_into_a_running_loop(tmp_path, registry, cli):
    "`regime-nb retrain` (papermill, the real S&P 500) against the registry a live replay serves: its promotion reaches the loop, which misses and repeats no bar, and the run is on record."
    reg_path, va, _ = registry
    cfg = cfg_for(tmp_path, reg_path, start="2010-01-01", speed=30.0)  # ~2260 bars, ~75 s: the job promotes in the middle of it
    ts, finite, _ = expected(cfg, reg_path, va)
    n = len(ts)
    tap, sup, th, res = start(cfg)
    assert tap.wait_bars(30, 60), f"only {tap.n} predictions after 60 s"
    gates = dict(families="gmm", max_k=2, max_drawdown=1, min_sharpe=-10, max_sharpe=100, min_monthly_return=-1, min_sharpe_gain=-10, min_sharpe_gain_rel=-100,
                 max_drawdown_worsening=1, regime_margin=100, min_regime_share=0, min_duration=1, min_agreement=0, shadow_bars=0)
    t0 = time.time()
    r = cli("retrain", *[a for k, v in gates.items() for a in ("-p", k, v)], "-p", "registry", reg_path, "-p", "store", cfg.store, "--quiet")
    took = time.time() - t0
    assert r.returncode == 0, r.stderr
    o = read_outcome(Path(r.stdout.split("executed notebook: ")[1].split()[0]))
    assert o["promoted"], o
    vnew = o["version"]
    assert tap.n < n - 60, f"the replay ended ({tap.n} of {n} bars) before the job promoted (it took {took:.0f} s): the test proves nothing"
    th.join(150); tap.finish()
    assert not th.is_alive() and "stats" in res
    stats = res["stats"]
    assert [r[0] for r in tap.rows] == ts.tolist(), (tap.n, n)
    vers = np.array([r[1] for r in tap.rows])
    k = int(np.argmax(vers == vnew))
    assert set(vers) == {va, vnew} and (vers[:k] == va).all() and (vers[k:] == vnew).all(), (set(vers), k)
    sp_ = tap.stats or stats["prediction"]
    assert sp_.get("swaps") == 1 and sp_["model_version"] == vnew, sp_
    dec = Store(cfg.store).query_df("SELECT ts_ns, model_version FROM decisions ORDER BY ts_ns")
    assert (dec[dec.ts_ns > ts[k] + 10**9 * 86400 * 3].model_version == vnew).all() and (dec.model_version == vnew).sum() >= 1, dec.tail()
    check_trading(cfg, sup, stats, n)
    with Store(tmp_path/"output"/"regime_nb.sqlite") as st: rs = runs(st, job="retrain")
    assert rs.status.tolist() == ["succeeded"] and rs.promoted.tolist() == [1], rs
