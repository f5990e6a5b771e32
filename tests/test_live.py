"The live loop as a user runs it: real processes, sockets, the SQLite store; parity with the backtest and faults."
import os, random, signal, threading, time
import numpy as np, pandas as pd
import pytest, zmq
from regime_nb.bus import Heartbeat, Publisher, Subscriber
from regime_nb.data import load_dataset
from regime_nb.features import FeatureSpec, compute_features
from regime_nb.supervisor import LiveConfig, Supervisor, parity_check
from regime_nb.regimes import GMMRegime
from regime_nb.registry import Registry
from regime_nb.store import Store

PERMISSIVE = dict(var_limit=None, max_position=10, stale_after_s=60, max_orders_per_min=100_000, max_drawdown=0.99)

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    "A GMM(2) fitted on the S&P 500 up to 2014, registered and promoted to champion."
    d = tmp_path_factory.mktemp("reg")
    sp = load_dataset("sp500")
    m = GMMRegime(2).fit(compute_features(sp).loc[:"2014"])
    with Registry(d) as reg:
        reg.promote(reg.register(m, spec=FeatureSpec.default(), data=sp.loc[:"2014"], symbol="sp500"), "champion", reason="tests")
    return str(d)

def cfg_for(tmp_path, registry, **kw):
    kw = {"data": "sp500", "start": "2015-01-01", "risk": PERMISSIVE, "heartbeat_ms": 1000, **kw}  # a loaded 2-core CI box can starve a service for 0.6 s
    return LiveConfig(run_dir=str(tmp_path/"run"), store=str(tmp_path/"store.sqlite"), registry=registry, **kw)

def quiet(_): pass

def run_in_thread(cfg, duration_s:float, bars:int=0):
    "Start the supervised loop in a thread; return (supervisor, thread, result dict) once the trading service has processed `bars` bars."
    sup, res = Supervisor(cfg, out=quiet), {}
    th = threading.Thread(target=lambda: res.update(stats=sup.run(duration_s)), daemon=True); th.start()
    t_end = time.time() + 60
    while bars and time.time() < t_end and sup.stats.get("trading", {}).get("bars", 0) < bars: time.sleep(0.02)
    return sup, th, res

def test_replay_through_the_live_loop_equals_the_backtest(tmp_path, registry):
    cfg = cfg_for(tmp_path, registry)
    sup = Supervisor(cfg, out=quiet)
    stats = sup.run(180)
    assert stats["trading"]["done"] and not sup.restarts, (stats, sup.restarts)
    p = parity_check(cfg)
    assert p["bars_live"] == p["bars_backtest"] == 1006
    assert p["trades_live"] == p["trades_backtest"] > 10
    assert p["max_abs_equity_diff"] <= 1e-9 and p["fills_equity_diff"] <= 1e-9, p
    st = Store(cfg.store)
    assert st.integrity_check() and not st.open_orders()

def _bad_file(tmp_path):
    "S&P 500 2014-2016 as a CSV, and the same bars with bad ones mixed in."
    sp = load_dataset("sp500").loc["2014":"2016"].reset_index()
    clean = tmp_path/"clean.csv"; sp.to_csv(clean, index=False)
    rows, rng = [], np.random.default_rng(0)
    bad_at = set(rng.choice(np.arange(300, len(sp) - 5), 7, replace=False))
    kinds = iter(["nan", "inf", "zero", "negative", "spike", "duplicate_ts", "out_of_order"])
    for i, r in sp.iterrows():
        rows.append(r.to_dict())
        if i in bad_at:
            k, b = next(kinds), r.to_dict()
            if k == "nan": b["close"] = np.nan
            elif k == "inf": b["high"] = np.inf
            elif k == "zero": b["low"] = 0.0
            elif k == "negative": b["open"] = -b["open"]
            elif k == "spike": b = {**b, "open": b["close"] * 5, "high": b["close"] * 5, "low": b["close"] * 5, "close": b["close"] * 5}
            elif k == "out_of_order": b["ts"] = b["ts"] - pd.Timedelta(days=30)
            if k not in ("duplicate_ts", "out_of_order"): b["ts"] = b["ts"] + pd.Timedelta(hours=12)
            rows.append(b)
    bad = tmp_path/"bad.csv"; pd.DataFrame(rows).to_csv(bad, index=False)
    return clean, bad

def test_bad_bars_are_rejected_counted_and_trigger_nothing(tmp_path, registry):
    clean, bad = _bad_file(tmp_path)
    cfg = cfg_for(tmp_path, registry, data=str(bad), start=None, symbol="spx")
    sup = Supervisor(cfg, out=quiet)
    stats = sup.run(180)
    assert stats["trading"]["done"] and not sup.restarts, (stats, sup.restarts)
    rejected = stats["feed"]["rejected"]
    for kind in ("nan", "inf", "nonpositive", "spike", "duplicate_ts", "out_of_order"): assert rejected.get(kind, 0) >= 1, rejected
    assert sum(rejected.values()) == 7
    # the bad bars changed nothing: the run equals the backtest of the clean bars
    ref = cfg_for(tmp_path, registry, data=str(clean), start=None, symbol="spx")
    p = parity_check(ref)
    assert p["trades_live"] == p["trades_backtest"] and p["max_abs_equity_diff"] <= 1e-9, p

def test_malformed_messages_are_dropped_and_the_service_keeps_running(tmp_path, registry):
    import subprocess, sys
    cfg = cfg_for(tmp_path, registry, end="2015-03-31")
    ctx = zmq.Context.instance()
    fake_feed = Publisher(cfg.endpoints["feed"], "feed", ctx=ctx)
    cfg.save()
    p = subprocess.Popen([sys.executable, "-m", "regime_nb.supervisor", "features", str(tmp_path/"run"/"config.json")])
    from regime_nb.bus import HeartbeatMonitor
    mon = HeartbeatMonitor(200)
    out = Subscriber(cfg.endpoints["features"], topics=("feat.",), ctx=ctx, monitor=mon)
    hb = Heartbeat(fake_feed, 200)
    try:
        t_ready = time.time() + 30.0  # the service loads, connects, hears the (fake) feed's heartbeat, and only then heartbeats itself
        while time.time() < t_ready and "features" not in mon.last: hb.tick(); out.recv(timeout_ms=50)
        assert "features" in mon.last, "the feature service never became ready"
        sym = cfg.symbol
        raw = fake_feed.sock
        for frames in ([b"bar.sp500"], [b"bar.sp500", b"\x00\x01", b"x"], [b"bar.sp500", b"garbage" * 10, b"\xc1"], [b"bar.sp500", b"", b""]):
            raw.send_multipart(frames)
        for body in ("not a bar", [1, 2, 3], {"ts": "2015", "close": 1.0}, {"ts": 1, "open": 1.0, "high": 1.0, "low": 1.0, "close": "x", "volume": 0.0}):
            fake_feed.publish(f"bar.{sym}", body)
        sp = load_dataset("sp500").loc["2015-01-01":"2015-01-31"]
        for t, r in sp.iterrows():
            fake_feed.publish(f"bar.{sym}", dict(ts=int(t.value), open=r.open, high=r.high, low=r.low, close=r.close, volume=r.volume), event_ns=int(t.value))
        got, t_end = 0, time.time() + 10
        while time.time() < t_end and got < len(sp):
            hb.tick()
            m = out.recv(timeout_ms=200)
            if m is not None: got += len(m.body["ts"])  # bars featured (under load one message carries several)
        assert got == len(sp), got
        assert p.poll() is None  # still running
    finally:
        p.terminate(); p.wait(10); out.close(); fake_feed.close()

def test_a_frozen_service_is_detected_within_three_heartbeats_and_stops_trading(tmp_path, registry):
    cfg = cfg_for(tmp_path, registry, speed=100.0, heartbeat_ms=200)
    seen = {}
    sup = Supervisor(cfg, out=quiet)
    th = threading.Thread(target=lambda: seen.update(stats=sup.run(60)), daemon=True); th.start()
    st = Store(cfg.store)
    t_end = time.time() + 30
    while time.time() < t_end and len(st.query("SELECT 1 FROM equity")) < 100: time.sleep(0.1)
    pid = sup.procs["prediction"].pid
    os.kill(pid, signal.SIGSTOP); t_stop = time.time()
    try:
        t_alert = None
        while time.time() - t_stop < 5:
            a = st.alerts()
            if len(a) and (a.kind == "silent_peer").any() and a.message.str.contains("prediction").any(): t_alert = time.time(); break
            time.sleep(0.05)
        assert t_alert is not None and t_alert - t_stop < 3 * 0.2 + 0.5, t_alert and t_alert - t_stop
        t_down = None
        while time.time() - t_stop < 5 and t_down is None:  # the supervisor has it on record as down too
            h = st.latest_health()
            if len(h) and (h.set_index("service").status.get("prediction") == "down"): t_down = time.time()
            time.sleep(0.05)
        assert t_down is not None and t_down - t_stop < 3 * 0.2 + 0.5, t_down and t_down - t_stop
        n_orders = st.query_one("SELECT COUNT(*) FROM orders")[0]
        time.sleep(1.0)
        assert st.query_one("SELECT COUNT(*) FROM orders")[0] == n_orders  # no new orders while a peer is frozen
    finally:
        os.kill(pid, signal.SIGCONT)
    sup.stopping = True; th.join(30)
    assert st.integrity_check()

def freeze_until_alerted(tmp_path, registry, victim:str):
    "SIGSTOP `victim` once the loop is trading; SIGCONT it once the supervisor's alert is in the store; let the replay finish. Returns (seconds from SIGSTOP to the alert, the SIGSTOP's time, supervisor, store, cfg, stats)."
    cfg = cfg_for(tmp_path, registry, speed=100.0)  # a 10 s replay at heartbeat_ms 1000
    sup, seen = Supervisor(cfg, out=quiet), {}
    th = threading.Thread(target=lambda: seen.update(stats=sup.run(240)), daemon=True); th.start()
    st, t_end = Store(cfg.store), time.time() + 120  # a loaded 2-core box can take tens of seconds to start five processes
    while time.time() < t_end and len(st.query("SELECT 1 FROM fills")) < 3: time.sleep(0.05)  # trading, and the broker filling its orders
    assert len(st.query("SELECT 1 FROM fills")) >= 3, "the loop never traded"
    pid = sup.procs[victim].pid
    os.kill(pid, signal.SIGSTOP); t_stop = time.time_ns()
    try:
        a = None
        while time.time_ns() - t_stop < 8e9 and a is None:
            al = st.alerts(since_ns=t_stop)
            hit = al[(al.kind == "service_silent") & al.message.str.startswith(victim)]
            a = hit.iloc[0] if len(hit) else None
            time.sleep(0.02)
    finally:
        os.kill(pid, signal.SIGCONT)
    th.join(240)
    assert a is not None, f"no service_silent alert for {victim} within 8 s of its SIGSTOP"
    return (int(a.ts_ns) - t_stop) / 1e9, t_stop, sup, st, cfg, seen.get("stats", {})

@pytest.mark.parametrize("victim", ["broker", "trading"])
def test_a_frozen_broker_or_trading_service_is_alerted_within_three_heartbeats_and_the_run_ends_like_the_backtest(tmp_path, registry, victim):
    latency_s, t_stop, sup, st, cfg, stats = freeze_until_alerted(tmp_path, registry, victim)
    print(f"{victim}: SIGSTOP to alert {latency_s:.3f} s (heartbeat 1.0 s)")
    assert 0 < latency_s <= 3 * cfg.heartbeat_ms / 1e3 + 0.5, latency_s  # the last beat came before the SIGSTOP; the supervisor checks every 0.1 s
    assert stats["trading"]["done"] and not sup.restarts, (stats["trading"], sup.restarts)  # SIGCONT long before frozen_restart_s: alerted, not restarted
    a = st.alerts(since_ns=t_stop)  # (a service busy warming up can be silent a moment at start on a loaded box: another episode)
    mine = a[a.kind.isin(["service_silent", "service_recovered"]) & a.message.str.startswith(victim)]
    assert mine.kind.tolist() == ["service_silent", "service_recovered"], mine  # one alert per episode, one when it clears
    assert not (a.kind == "broker_silent").any() and not (a.kind == "silent_peer").any(), a  # no request expired; no peer was taken for silent
    p = parity_check(cfg)
    assert p["bars_live"] == p["bars_backtest"] == 1006 and p["trades_live"] == p["trades_backtest"] and p["max_abs_equity_diff"] <= 1e-9, p
    assert st.integrity_check() and not st.open_orders()


def test_a_broker_frozen_for_longer_than_frozen_restart_s_is_killed_and_restarted_and_loses_no_fill(tmp_path, registry):
    from regime_nb.broker import RemoteBroker
    cfg = cfg_for(tmp_path, registry, speed=100.0, frozen_restart_s=4.0)
    sup, checks = Supervisor(cfg, out=quiet), {}
    def reconcile(s):
        b = RemoteBroker(cfg.endpoints["broker"], timeout_ms=3000)
        try: checks.update(broker_fills=b.fills(), broker_orders=b.orders(), positions=b.positions())
        finally: b.close()
    th = threading.Thread(target=lambda: sup.run(240, before_stop=reconcile), daemon=True); th.start()
    st, t_end = Store(cfg.store), time.time() + 120
    while time.time() < t_end and len(st.query("SELECT 1 FROM fills")) < 3: time.sleep(0.05)
    frozen = sup.procs["broker"]
    os.kill(frozen.pid, signal.SIGSTOP); t_stop = time.time_ns()  # and never SIGCONT: the supervisor must kill it
    th.join(240)
    assert frozen.poll() == -signal.SIGKILL and sup.restarts.get("broker") == 1, (frozen.poll(), sup.restarts)
    assert sup.stats["trading"]["done"], sup.stats["trading"]
    a = st.alerts(since_ns=t_stop)
    mine = a[a.kind.isin(["service_silent", "frozen_restart", "service_recovered"]) & a.message.str.startswith("broker")]
    assert mine.kind.tolist() == ["service_silent", "frozen_restart", "service_recovered"], mine
    bf, sf = checks["broker_fills"], st.fills()
    assert len(bf) > 3 and sorted(f.broker_trade_id for f in bf) == sorted(sf.broker_trade_id)  # no fill lost, none booked twice
    assert st.position(cfg.symbol)["qty"] == pytest.approx(checks["positions"].get(cfg.symbol, 0.0), abs=1e-12)
    o = st.query_df("SELECT client_order_id FROM orders")
    assert o.client_order_id.is_unique and {s.client_order_id for s in checks["broker_orders"]} <= set(o.client_order_id)
    assert st.integrity_check()


def kill_at_random(sup, victims, store, seed:int):
    "SIGKILL each victim process in turn, 0.8-2 s after the last; the store passes `PRAGMA integrity_check` after each."
    rng, killed = random.Random(seed), {}
    for victim in victims:
        time.sleep(rng.uniform(0.8, 2.0))
        p = sup.procs.get(victim)
        if p is not None and p.poll() is None: os.kill(p.pid, signal.SIGKILL); killed[victim] = killed.get(victim, 0) + 1
        assert store.integrity_check()
    return killed  # service -> times killed (a victim that was down, restarting, is spared that turn)

def assert_nothing_lost(checks:dict, cfg, min_fills:int) -> tuple:
    "After kills: no fill lost or booked twice, the store's position and cash are the broker's, the broker saw no order the store had not recorded first; (broker fills, broker orders by id)."
    assert checks, "the run ended without reconciling"
    bf, sf = checks["broker_fills"], checks["store_fills"]
    assert len(bf) >= min_fills and sorted(f.broker_trade_id for f in bf) == sorted(sf.broker_trade_id)  # no fill lost, none booked twice
    assert checks["store_pos"] == pytest.approx(checks["positions"].get(cfg.symbol, 0.0), abs=1e-12)
    assert checks["store_cash"] == pytest.approx(checks["account"]["cash"], abs=1e-12)
    o, bo = checks["orders"], {s.client_order_id: s for s in checks["broker_orders"]}
    assert set(bo) <= set(o.client_order_id) and o.created_ns.notna().all()  # the broker never saw an order the store had not recorded first
    return bf, bo

def test_kill_9_at_random_moments_loses_no_fill_and_duplicates_no_order(tmp_path, registry):
    from regime_nb.broker import RemoteBroker
    cfg = cfg_for(tmp_path, registry, speed=60.0)  # a 17 s replay: the kills land during it
    sup = Supervisor(cfg, out=quiet)
    checks = {}
    def reconcile(s):
        b = RemoteBroker(cfg.endpoints["broker"], timeout_ms=3000)
        st = Store(cfg.store)
        checks.update(account=b.account(), positions=b.positions(), broker_fills=b.fills(), broker_orders=b.orders(), store_fills=st.fills(),
                      store_cash=st.cash_from_fills(cfg.init_cash), store_pos=st.position(cfg.symbol)["qty"], orders=st.query_df("SELECT * FROM orders"))
        b.close()
    th = threading.Thread(target=lambda: sup.run(45, before_stop=reconcile), daemon=True); th.start()
    st = Store(cfg.store)
    victims = ["trading", "features", "broker", "trading", "prediction", "broker", "trading", "feed", "prediction", "features"]
    killed = kill_at_random(sup, victims, st, seed=7)
    th.join(90)
    assert set(killed) == set(victims) and sum(killed.values()) >= 8, killed  # every service died at least once
    assert all(sup.restarts.get(v, 0) >= n for v, n in killed.items()), (killed, sup.restarts)  # and came back each time
    bf, bo = assert_nothing_lost(checks, cfg, min_fills=1)
    assert len({int(c.rsplit("-", 1)[1]) for c in bo}) == len(bo)  # one order per bar at most: nothing sent twice under a new id
    assert all(s.filled_qty <= s.qty * (1 + 1e-12) for s in bo.values())  # and nothing filled twice
    assert st.integrity_check() and Store(cfg.market_store).integrity_check()

def test_kill_switch_pulls_out_at_the_configured_drawdown(tmp_path, registry):
    n = 400
    up, down = np.linspace(100, 110, 200), np.linspace(110, 60, n - 200)
    close = np.r_[up, down]
    ts = pd.bdate_range("2016-01-01", periods=n, tz="UTC", name="ts")
    path = tmp_path/"crash.csv"
    pd.DataFrame(dict(ts=ts, open=np.r_[close[0], close[:-1]], high=np.maximum(close, np.r_[close[0], close[:-1]]),
                      low=np.minimum(close, np.r_[close[0], close[:-1]]), close=close, volume=1e6)).to_csv(path, index=False)
    cfg = cfg_for(tmp_path, registry, data=str(path), start=None, symbol="crash", strategy={"kind": "RegimeExposure", "exposures": [1.0, 1.0]},
                  risk={**PERMISSIVE, "max_drawdown": 0.25})
    stats = Supervisor(cfg, out=quiet).run(120)
    assert stats["trading"]["done"] and stats["trading"]["killed"]
    st = Store(cfg.store)
    eq = st.query_df("SELECT ts_ns, equity, positions FROM equity ORDER BY ts_ns")
    dd = 1 - eq.equity / eq.equity.cummax()
    first = int(np.argmax(dd.to_numpy() >= 0.25 - 1e-12))
    assert dd.iloc[:first].max() < 0.25 <= dd.iloc[first]
    a = st.alerts()
    assert (a.kind == "kill_switch").sum() == 1
    units = eq.positions.map(lambda s: __import__("json").loads(s)["crash"])
    assert units.iloc[first + 1:].eq(0).all()  # flat from the bar after the switch fired (orders fill at the next close)
    buys_after = st.query_one("SELECT COUNT(*) FROM fills WHERE side IN ('buy', 1) AND ts_ns > ?", (int(eq.ts_ns.iloc[first]),))[0]
    assert buys_after == 0

def _tick_files(tmp_path):
    "Simulated ticks as a CSV, and the same ticks with bad ones of every kind mixed in; a GMM(2) registry fitted on the first bars."
    from regime_nb.data import resample_bars
    from regime_nb.simulate import simulate_ticks
    ticks = simulate_ticks(40_000, seed=3, mean_interval_s=2.0)[["bid", "ask", "price", "size"]]
    bars = resample_bars(ticks, "1min")
    reg = tmp_path/"reg"
    with Registry(reg) as r:
        r.promote(r.register(GMMRegime(2).fit(compute_features(bars.iloc[:400])), spec=FeatureSpec.default()), "champion", reason="tests")
    clean = tmp_path/"ticks.csv"; ticks.reset_index().to_csv(clean, index=False)
    start = bars.index[400]
    rng, rows, injected = np.random.default_rng(5), [], {}
    t = ticks.reset_index()
    bad_at = set(rng.choice(np.arange(t.index[t.ts >= start][0] + 50, len(t) - 50), 24, replace=False).tolist())
    kinds = iter(["nan", "inf", "nonpositive", "size", "crossed", "off_quote", "out_of_order", "spike"] * 3)
    for i, r in enumerate(t.itertuples(index=False)):
        rows.append(r._asdict())
        if i in bad_at:
            k, b = next(kinds), dict(r._asdict())
            if k == "nan": b["price"] = np.nan
            elif k == "inf": b["ask"] = np.inf
            elif k == "nonpositive": b["bid"] = -b["bid"]
            elif k == "size": b["size"] = 0.0
            elif k == "crossed": b["bid"] = b["ask"] * 1.001
            elif k == "off_quote": b["price"] = b["ask"] * 1.05
            elif k == "out_of_order": b["ts"] = b["ts"] - pd.Timedelta(minutes=30)
            elif k == "spike": b.update(bid=b["bid"] * 3, ask=b["ask"] * 3, price=b["price"] * 3)
            injected[k] = injected.get(k, 0) + 1
            rows.append(b)
    bad = tmp_path/"bad_ticks.csv"; pd.DataFrame(rows).to_csv(bad, index=False)
    return clean, bad, str(reg), str(start), injected

def test_bad_ticks_are_rejected_by_kind_and_the_bars_they_leave_trade_like_the_backtest(tmp_path):
    clean, bad, reg, start, injected = _tick_files(tmp_path)
    cfg = cfg_for(tmp_path, reg, data=str(bad), start=start, symbol="tk")
    sup = Supervisor(cfg, out=quiet)
    stats = sup.run(180)
    assert stats["trading"]["done"] and not sup.restarts, (stats, sup.restarts)
    assert stats["feed"]["rejected"] == injected, (stats["feed"]["rejected"], injected)
    p = parity_check(cfg_for(tmp_path, reg, data=str(clean), start=start, symbol="tk"))  # the live run on bad ticks equals the backtest of the clean ones
    assert p["bars_live"] == p["bars_backtest"] > 900
    assert p["trades_live"] == p["trades_backtest"] > 5 and p["max_abs_equity_diff"] <= 1e-9, p

def test_an_external_feed_is_relayed_validated_and_traded_like_the_backtest(tmp_path, registry):
    cfg = cfg_for(tmp_path, registry, data="relay", start=None, symbol="ext")
    sup, res = Supervisor(cfg, out=quiet), {}
    th = threading.Thread(target=lambda: res.update(stats=sup.run(120)), daemon=True); th.start()
    vendor = Publisher(cfg.endpoints["ingest"], "vendor", bind=False, ctx=zmq.Context.instance())
    t_end = time.time() + 30
    while time.time() < t_end and "trading" not in sup.stats: time.sleep(0.1)  # every service is up
    time.sleep(1.0)  # and the vendor's connection is made
    sp = load_dataset("sp500").loc["2015":"2016"]
    rows = [dict(ts=int(t.value), open=r.open, high=r.high, low=r.low, close=r.close, volume=r.volume) for t, r in sp.iterrows()]
    for i in range(0, len(rows), 7):  # blocks of 7 bars, and some bad input on the way
        blk = rows[i:i + 7]
        vendor.publish("bar.ext", {k: [b[k] for b in blk] for k in blk[0]})
        if i == 70: vendor.publish("bar.ext", dict(rows[i + 6], ts=rows[i + 6]["ts"] + 1, close=float("nan")))
        if i == 140: vendor.publish("bar.ext", {"ts": [1, 2], "open": [1.0]}); vendor.publish("bar.ext", "garbage")
        if i == 210: vendor.skip_seq("bar.ext", 3)  # three messages lost on the way
        time.sleep(0.002)
    vendor.publish("eof.ext", {})
    th.join(150); vendor.close()
    stats = res["stats"]
    assert stats["trading"]["done"] and not sup.restarts, (stats, sup.restarts)
    f = stats["feed"]
    assert (f["rejected"], f["bad_messages"], f["gaps"], stats["trading"]["bars"]) == ({"nan": 1}, 2, 3, len(sp)), f
    recorded = tmp_path/"recorded.csv"
    Store(cfg.market_store).query_df("SELECT ts_ns, open, high, low, close, volume FROM bars WHERE symbol = 'ext' ORDER BY ts_ns") \
        .assign(ts=lambda d: pd.to_datetime(d.ts_ns, utc=True)).drop(columns="ts_ns").to_csv(recorded, index=False)
    p = parity_check(cfg_for(tmp_path, registry, data=str(recorded), start=None, symbol="ext"))  # what it relayed traded as the backtest of it would
    assert p["bars_live"] == p["bars_backtest"] == len(sp) and p["trades_live"] == p["trades_backtest"] > 5 and p["max_abs_equity_diff"] <= 1e-9, p

@pytest.mark.skipif(not zmq.has("curve"), reason="this libzmq has no CURVE support (built without libsodium)")
def test_with_curve_keys_the_ingest_point_takes_bars_only_from_a_vendor_holding_the_client_key(tmp_path, registry):
    from regime_nb.live import make_curve_keys
    cfg = cfg_for(tmp_path, registry, data="relay", start=None, symbol="ext", curve_dir=str(make_curve_keys(tmp_path/"keys")))
    sup, res = Supervisor(cfg, out=quiet), {}
    th = threading.Thread(target=lambda: res.update(stats=sup.run(120)), daemon=True); th.start()
    ctx = zmq.Context.instance()
    vendor = Publisher(cfg.endpoints["ingest"], "vendor", bind=False, ctx=ctx, curve=cfg.curve("client"))
    plain = Publisher(cfg.endpoints["ingest"], "plain", bind=False, ctx=ctx)  # no keys at all
    spub = cfg.curve("client")["server_public"]
    opub, osec = zmq.curve_keypair()
    stranger = Publisher(cfg.endpoints["ingest"], "stranger", bind=False, ctx=ctx, curve={"server_public": spub, "client_public": opub, "client_secret": osec})
    t_end = time.time() + 30
    while time.time() < t_end and "trading" not in sup.stats: time.sleep(0.1)
    time.sleep(1.0)
    sp = load_dataset("sp500").loc["2016"]
    cols = {k: (sp.index.asi8 if k == "ts" else sp[k].to_numpy()) for k in ("ts", "open", "high", "low", "close", "volume")}
    for i in range(0, len(sp), 10):
        blk = {k: v[i:i + 10].tolist() for k, v in cols.items()}
        vendor.publish("bar.ext", blk)
        for p in (plain, stranger): p.publish("bar.ext", dict(blk, ts=[t + 1 for t in blk["ts"]], close=[c * 2 for c in blk["close"]]))  # would be bars (and spikes) of their own
        time.sleep(0.002)
    for p in (plain, stranger): p.publish("eof.ext", {})  # an end of stream from them would stop the loop early
    time.sleep(0.2); vendor.publish("eof.ext", {})
    th.join(150)
    for p in (vendor, plain, stranger): p.close()
    stats = res["stats"]
    assert stats["trading"]["done"] and not sup.restarts, (stats, sup.restarts)
    f = stats["feed"]
    assert (f["rejected"], f.get("bad_messages", 0), f["gaps"], stats["trading"]["bars"]) == ({}, 0, 0, len(sp)), f
    got = Store(cfg.market_store).query_df("SELECT ts_ns, close FROM bars WHERE symbol = 'ext' ORDER BY ts_ns")
    np.testing.assert_array_equal(got.ts_ns.to_numpy(), sp.index.asi8); np.testing.assert_array_equal(got.close.to_numpy(), sp.close.to_numpy())

@pytest.mark.skipif(not zmq.has("curve"), reason="this libzmq has no CURVE support (built without libsodium)")
def test_with_curve_keys_the_loop_trades_and_a_client_without_them_receives_nothing(tmp_path, registry):
    from regime_nb.broker import RemoteBroker
    from regime_nb.bus import RequestTimeout
    from regime_nb.live import make_curve_keys
    cfg = cfg_for(tmp_path, registry, speed=200.0, curve_dir=str(make_curve_keys(tmp_path/"keys")))
    seen = {}
    def strangers(s):
        b = RemoteBroker(cfg.endpoints["broker"], timeout_ms=500, retries=0)
        try: b.account(); seen["broker"] = "answered"
        except RequestTimeout: seen["broker"] = "silent"
        finally: b.close()
        subs = [Subscriber(cfg.endpoints[k], ctx=zmq.Context.instance(), deliver_heartbeats=True) for k in ("feed", "features", "predictions", "trading")]
        got, t_end = [0] * len(subs), time.time() + 1.5
        while time.time() < t_end:
            for i, x in enumerate(subs): got[i] += x.recv(timeout_ms=10) is not None  # heartbeats count too
        seen["received"] = got
        for x in subs: x.close()
        seen["running"] = not sup.stats.get("trading", {}).get("done")  # the loop was still running when they asked
    sup, th, res = run_in_thread(cfg, 120, bars=20)
    strangers(sup)  # while the loop runs
    th.join(150)
    assert seen == {"received": [0, 0, 0, 0], "broker": "silent", "running": True}, seen
    assert res["stats"]["trading"]["done"] and not sup.restarts
    p = parity_check(cfg)
    assert p["trades_live"] == p["trades_backtest"] > 5 and p["max_abs_equity_diff"] <= 1e-9, p

def test_a_late_joiner_knows_every_service_and_the_regime_at_once(tmp_path, registry):
    from regime_nb.supervisor import LiveView
    cfg = cfg_for(tmp_path, registry, speed=100.0)
    sup, th, res = run_in_thread(cfg, 60, bars=150)
    view = LiveView(cfg)  # no waiting for the next publication
    try:
        assert all(view.stats(s) is not None for s in ("feed", "features", "prediction", "trading")), sorted(view.last)
        regime = view.last.get(f"regime.{cfg.symbol}")
        assert regime is not None and regime.body["version"] >= 1 and len(regime.body["probs"][-1]) == 2
        t0 = regime.body["ts"][-1]
        t_end = time.time() + 5
        while time.time() < t_end and view.last[f"regime.{cfg.symbol}"].body["ts"][-1] == t0: view.poll(100)
        assert view.last[f"regime.{cfg.symbol}"].body["ts"][-1] > t0 and view.gaps == 0  # the stream goes on from the snapshot, with no false gap
    finally:
        view.close(); sup.stopping = True; th.join(30)

def test_a_model_that_falls_short_of_its_validation_figures_gets_no_new_risk(tmp_path):
    "Degradation: the served model's registry metrics carry validation figures; live results below them block new risk, not risk reduction."
    sp = load_dataset("sp500")
    m = GMMRegime(2).fit(compute_features(sp).loc[:"2014"])
    reg = tmp_path/"reg"
    with Registry(reg) as r:  # a validation Sharpe no live run can reach
        r.promote(r.register(m, spec=FeatureSpec.default(), metrics={"validation_sharpe": 50.0}), "champion", reason="tests")
    cfg = cfg_for(tmp_path, str(reg), risk={**PERMISSIVE, "degradation_window": 20})
    stats = Supervisor(cfg, out=quiet).run(180)
    assert stats["trading"]["done"]
    st = Store(cfg.store)
    d = st.query_df("SELECT ts_ns, allowed, reasons FROM decisions ORDER BY ts_ns")
    refused = d[(d.allowed == 0) & d.reasons.str.contains("live Sharpe")]
    assert len(refused) > 0, d.reasons.tolist()[:5]
    eq = st.query_df("SELECT ts_ns, positions FROM equity ORDER BY ts_ns")
    units = eq.positions.map(lambda s: __import__("json").loads(s)["sp500"]).abs().to_numpy()
    after = eq.ts_ns.to_numpy() >= refused.ts_ns.iloc[0]
    assert (np.diff(units[after]) <= 1e-12).all()  # from the first refusal on, exposure only ever shrinks
    p = parity_check(cfg)
    assert p["trades_live"] < p["trades_backtest"]

def test_the_regime_service_answers_predict_and_latest_requests(tmp_path, registry):
    from regime_nb.bus import Client, RemoteError
    cfg = cfg_for(tmp_path, registry, speed=200.0)
    sup, th, res = run_in_thread(cfg, 60, bars=50)
    cli = Client(cfg.endpoints["predict"], timeout_ms=2000, retries=1, ctx=zmq.Context.instance())
    try:
        with Registry(registry) as reg: model = reg.load("champion")
        X = compute_features(load_dataset("sp500")).loc["2012"].to_numpy()
        rep = cli.request("predict", {"X": X.tolist()})
        np.testing.assert_allclose(rep.body["probs"], model.predict_proba(X), atol=1e-12)
        assert rep.body["version"] == sup.stats["prediction"]["model_version"]
        latest = cli.request("latest", {}).body
        assert latest["symbol"] == cfg.symbol and pd.Timestamp(latest["ts"], tz="UTC") >= pd.Timestamp("2015-01-01", tz="UTC") and len(latest["probs"]) == 2
        with pytest.raises(RemoteError, match="predict needs .*rows of 5 features"): cli.request("predict", {"X": [[1.0, 2.0]]})
        with pytest.raises(RemoteError, match="unknown request 'score'"): cli.request("score", {})
    finally:
        cli.close(); sup.stopping = True; th.join(30)
    assert not sup.restarts

def test_bars_that_waited_longer_than_stale_after_s_open_no_new_risk(tmp_path, registry):
    "The regime service freezes for 2 s (under three heartbeats): the bars that queued meanwhile are executed after it, and those whose orders open risk are refused as stale."
    cfg = cfg_for(tmp_path, registry, start="2010-01-01", speed=150.0, risk={**PERMISSIVE, "stale_after_s": 0.5})  # 2,100 bars, 14 s: about 300 queue behind the freeze, with several entries among them wherever it lands
    sup, th, res = run_in_thread(cfg, 120, bars=100)
    assert sup.stats["trading"]["bars"] >= 100 and not sup.stats["trading"].get("done"), sup.stats.get("trading")  # frozen while bars still flow
    pid = sup.procs["prediction"].pid
    os.kill(pid, signal.SIGSTOP); time.sleep(2.0); os.kill(pid, signal.SIGCONT)
    th.join(120)
    assert res["stats"]["trading"]["done"] and not sup.restarts
    d = Store(cfg.store).query_df("SELECT allowed, reasons FROM decisions")
    stale = d[(d.allowed == 0) & d.reasons.str.contains("stale_after_s")]
    assert len(stale) >= 1, d.reasons.tolist()
    assert not d[d.allowed == 0].reasons.str.contains("silent peers").any()  # a freeze under three heartbeats halts nothing: staleness did it

def test_a_tick_feed_killed_mid_bar_resumes_at_the_open_bar_and_trades_like_the_backtest(tmp_path):
    clean, _, reg, start, _ = _tick_files(tmp_path)
    cfg = cfg_for(tmp_path, reg, data=str(clean), start=start, symbol="tk", speed=12_000.0)  # ticks per second: about 6 s of replay
    sup, th, res = run_in_thread(cfg, 120, bars=50)
    for _ in range(2):
        os.kill(sup.procs["feed"].pid, signal.SIGKILL); time.sleep(1.5)
    th.join(150)
    assert res["stats"]["trading"]["done"] and sup.restarts.get("feed", 0) == 2, (res["stats"]["trading"], sup.restarts)
    p = parity_check(cfg)  # every bar built once, from all of its ticks: the run equals the backtest
    assert p["bars_live"] == p["bars_backtest"] and p["trades_live"] == p["trades_backtest"] and p["max_abs_equity_diff"] <= 1e-9, p

@pytest.mark.parametrize("speed", [0.0, 500.0])  # the feed's block path and its per-row path
def test_close_only_bars_replay_through_the_loop_like_the_backtest(tmp_path, registry, speed):
    "WTI is close-only: open = high = low = close, no volume."
    cfg = cfg_for(tmp_path, registry, data="wti", start="2017-01-01", symbol="wti", speed=speed)
    sup = Supervisor(cfg, out=quiet)
    stats = sup.run(120)
    assert stats["trading"]["done"] and not sup.restarts and not stats["feed"]["rejected"], (stats["feed"], sup.restarts)
    p = parity_check(cfg)
    assert p["bars_live"] == p["bars_backtest"] > 400 and p["trades_live"] == p["trades_backtest"] and p["max_abs_equity_diff"] <= 1e-9, p

@pytest.mark.parametrize("strategy,speed", [  # strategies that read more than the regimes: a z-score, prices and volume, a volatility
    ({"kind": "ZScoreRegimeSwitch", "trending": [1], "tick_size": 1.0, "trail_ticks": 40, "min_confidence": 0.0}, 0.0),
    ({"kind": "ZScoreRegimeSwitch", "trending": [1], "tick_size": 1.0, "trail_ticks": 40, "min_confidence": 0.0}, 400.0),
    ({"kind": "TrendFilter", "window": 50}, 0.0),
    ({"kind": "RegimeExposure", "exposures": [1.0, 0.2], "vol_target": 0.15}, 0.0)])
def test_a_strategy_that_reads_its_own_features_trades_live_like_the_backtest(tmp_path, registry, strategy, speed):
    cfg = cfg_for(tmp_path, registry, strategy=strategy, speed=speed, start="2016-01-01")
    sup = Supervisor(cfg, out=quiet)
    stats = sup.run(120)
    assert stats["trading"]["done"] and not sup.restarts, (stats, sup.restarts)
    p = parity_check(cfg)
    assert p["bars_live"] == p["bars_backtest"] > 700 and p["trades_live"] == p["trades_backtest"] > 5 and p["max_abs_equity_diff"] <= 1e-9, p

def test_an_unknown_strategy_is_refused_before_any_service_starts(tmp_path, registry):
    from regime_nb.core import RegimeNbError
    cfg = cfg_for(tmp_path, registry, strategy={"kind": "NoSuchStrategy"})
    with pytest.raises(RegimeNbError, match=r"strategy kind 'NoSuchStrategy'"): Supervisor(cfg, out=quiet)
    assert not list((tmp_path/"run").glob("*.log"))  # nothing was started

@pytest.mark.parametrize("kw,error", [
    (dict(strategy={"kind": "TrendFilter", "window": 20}, data="wti", symbol="wti", start="2017-01-01"), r"reads \['volume'\], which the replayed data does not have")])
def test_a_service_that_cannot_start_stops_the_run_with_its_error(tmp_path, registry, kw, error):
    from regime_nb.core import RegimeNbError
    cfg = cfg_for(tmp_path, registry, **kw)
    sup, t0 = Supervisor(cfg, out=quiet), time.time()
    with pytest.raises(RegimeNbError, match=r"the trading service failed 5 times in a row right after starting; its last error .*trading\.log.*" + error):
        sup.run(120)
    assert time.time() - t0 < 60 and all(p.poll() is not None for p in sup.procs.values())  # stopped early, and nothing left running

def test_limit_orders_fill_at_their_limit_and_are_given_up_by_the_seeds_rule(tmp_path, registry):
    "execution='limit': each order rests at the close of the bar that decided it; not filled within a bar, an entry is cancelled and an exit's rest goes at market."
    import json
    from regime_nb.broker import RemoteBroker
    cfg = cfg_for(tmp_path, registry, execution={"kind": "limit", "timeout_bars": 1})
    checks = {}
    def reconcile(_):
        b = RemoteBroker(cfg.endpoints["broker"], timeout_ms=3000)
        checks.update(account=b.account(), positions=b.positions()); b.close()
    sup = Supervisor(cfg, out=quiet)
    t = sup.run(180, before_stop=reconcile)["trading"]
    assert t["done"] and not sup.restarts and checks, (t, sup.restarts)
    st = Store(cfg.store)
    assert st.integrity_check() and not st.open_orders()
    bars = load_dataset("sp500")
    ts_ns = bars.index.as_unit("ns").asi8
    o = st.query_df("SELECT * FROM orders").set_index("client_order_id")
    f = st.query_df("SELECT * FROM fills")
    bar_of = lambda cid: int(cid.split(".")[0].rsplit("-", 1)[1])  # the bar an order was sent with (its id: symbol-bar)
    lim, child = o[o.type == "limit"], o[o.index.str.endswith(".m")]
    assert len(o) == len(lim) + len(child) and (child.type == "market").all()
    prev_close = {int(a): c for a, c in zip(ts_ns[1:], bars.close.to_numpy()[:-1])}
    assert np.allclose(lim.limit_price, [prev_close[bar_of(c)] for c in lim.index], rtol=0, atol=0)  # at the decision bar's close
    assert np.allclose(lim.intended_price, lim.limit_price, rtol=0, atol=0)
    px = bars.set_index(ts_ns)
    for r in f[f.client_order_id.isin(lim.index)].itertuples():  # a limit fill: at the limit or better, inside its bar, in the bar it was sent with
        L, b = lim.limit_price[r.client_order_id], px.loc[r.ts_ns]
        assert (r.price <= L + 1e-12 if r.side in (1, "buy") else r.price >= L - 1e-12) and b.low - 1e-9 <= r.price <= b.high + 1e-9
        assert r.ts_ns == bar_of(r.client_order_id)
    given_up = lim[lim.status == "cancelled"]
    entries, exits = given_up[given_up.intent == "entry"], given_up[given_up.intent == "exit"]
    assert len(lim[lim.status == "filled"]) > 10 and len(entries) > 0 and len(exits) > 0, o.status.value_counts()
    assert not any(f"{c}.m" in o.index for c in entries.index)  # an entry not filled in time is only cancelled
    assert set(child.index) == {f"{c}.m" for c in exits.index if exits.filled_qty[c] < exits.qty[c]}  # the rest of every exit went at market ...
    for c, r in child.iterrows():  # ... and filled whole at the close of the bar after the one the limit worked through
        fc = f[f.client_order_id == c]
        k = int(np.searchsorted(ts_ns, bar_of(c))) + 1
        assert fc.qty.sum() == pytest.approx(r.qty) and (fc.ts_ns == ts_ns[k]).all() and np.allclose(fc.price, bars.close.iloc[k], rtol=0, atol=0)
        assert r.qty == pytest.approx(o.qty[c[:-2]] - o.filled_qty[c[:-2]])
    eq = st.query_df("SELECT ts_ns, equity, positions FROM equity ORDER BY ts_ns")
    units = eq.positions.map(lambda s: json.loads(s)["sp500"]).to_numpy()
    exposure = units * px.close.reindex(eq.ts_ns).to_numpy() / eq.equity.to_numpy()
    assert exposure.max() <= 1.0 + 2 * cfg.costs_bps * 1e-4 and exposure.min() >= -1e-9  # one order at a time, sized at its limit: never more than the strategy's 1x (and its fees)
    assert st.cash_from_fills(cfg.init_cash) == pytest.approx(checks["account"]["cash"], abs=1e-12)
    assert st.position("sp500")["qty"] == pytest.approx(checks["positions"].get("sp500", 0.0), abs=1e-12)
    assert t["limit_given_up"] == len(given_up) and t["exits_at_market"] == len(child)
    print(f"limit execution, S&P 500 2015-2018, 1 bar to fill: {len(lim)} limit orders, {len(lim[lim.status == 'filled'])} filled, {len(entries)} entries and {len(exits)} exits given up")

def test_a_replay_counts_how_often_it_trades_on_the_datas_clock(tmp_path, registry):
    "Years of daily bars replayed in seconds: the default 60 orders a minute is a limit on event time, so it blocks nothing here and the run equals its backtest."
    risk = dict(PERMISSIVE, max_orders_per_min=60)  # the settings' default
    cfg = cfg_for(tmp_path, registry, risk=risk, start="2016-01-01", strategy={"kind": "RegimeExposure", "exposures": [1.0, 0.2], "vol_target": 0.15})
    sup = Supervisor(cfg, out=quiet)
    stats = sup.run(120)
    assert stats["trading"]["done"] and not sup.restarts, (stats, sup.restarts)
    p = parity_check(cfg)
    assert p["trades_live"] == p["trades_backtest"] > 120, p  # more than 60 orders in the minute of wall clock the replay takes
    assert p["max_abs_equity_diff"] <= 1e-9 and p["blocked"] == {} and stats["trading"]["blocked"] == {}, (p, stats["trading"])

@pytest.fixture(scope="module")
def hmm_registry(tmp_path_factory):
    "An HMM(2) champion (its filter carries state from bar to bar) fitted on the S&P 500 up to 2014."
    from regime_nb.regimes import HMMRegime
    d = tmp_path_factory.mktemp("reg_hmm")
    sp = load_dataset("sp500")
    with Registry(d) as reg:
        reg.promote(reg.register(HMMRegime(2, n_init=1).fit(compute_features(sp).loc[:"2014"]), spec=FeatureSpec.default(), data=sp.loc[:"2014"], symbol="sp500"), "champion", reason="tests")
    return str(d)

def kill_when_trading(sup, victims, store, seed:int, every_bars:int=120) -> dict:
    "SIGKILL each victim in turn, each once trading is under way again (`every_bars` more equity rows since the last kill: everything came back and caught up), at a random moment; service -> kills that landed."
    rng, killed, t_end = random.Random(seed), {}, time.time() + 120
    rows = lambda: store.query_one("SELECT COUNT(*) FROM equity")[0]
    target = every_bars
    for victim in victims:
        while rows() < target and time.time() < t_end: time.sleep(0.05)
        if time.time() >= t_end: break
        time.sleep(rng.uniform(0.0, 0.5))
        p = sup.procs.get(victim)
        if p is not None and p.poll() is None: os.kill(p.pid, signal.SIGKILL); killed[victim] = killed.get(victim, 0) + 1
        target = rows() + every_bars
        assert store.integrity_check()
    return killed

def kill_prediction_during_replay(cfg, kills:int, seed:int, every_bars:int):
    "Replay `cfg` under a supervisor, killing the prediction service `kills` times while trading is under way; (supervisor, every service's last stats, store) once it ends."
    sup, res = Supervisor(cfg, out=quiet), {}
    th = threading.Thread(target=lambda: res.update(stats=sup.run(120)), daemon=True); th.start()
    st = Store(cfg.store)
    n = kill_when_trading(sup, ["prediction"] * kills, st, seed=seed, every_bars=every_bars).get("prediction", 0)
    th.join(150)
    assert n == kills and sup.restarts.get("prediction", 0) >= kills, (n, sup.restarts)
    return sup, res["stats"], st

@pytest.mark.parametrize("model", ["gmm", "hmm"])
def test_kill_9_of_the_prediction_service_leaves_no_bar_undecided(tmp_path, registry, hmm_registry, model):
    "The prediction service killed four times during a replay resumes from its log each time: every bar gets its regime, once, and the run is the backtest's."
    cfg = cfg_for(tmp_path, registry if model == "gmm" else hmm_registry, speed=30.0,  # 1006 bars in ~34 s: four kills and restarts (~5 s each on a loaded box) land during it
                  heartbeat_ms=3000)  # a restart shorter than three heartbeats (9 s) halts nothing: the regimes it missed are what is under test, not the silent-peer rule
    sup, stats, st = kill_prediction_during_replay(cfg, 4, seed=11, every_bars=60); t = stats["trading"]
    assert t["done"] and t.get("undecided", 0) == 0 and t.get("unmatched", 0) == 0, t
    assert tuple(st.query_one("SELECT COUNT(*), COUNT(DISTINCT ts_ns) FROM equity")) == (1006, 1006)  # every bar once
    p = parity_check(cfg)
    assert p["bars_live"] == p["bars_backtest"] == 1006 and p["trades_live"] == p["trades_backtest"] > 10 and p["blocked"] == {}, p
    assert p["max_abs_equity_diff"] <= 1e-9 and p["fills_equity_diff"] <= 1e-9, p
    d = st.query_df("SELECT ts_ns, COUNT(*) AS n FROM decisions GROUP BY ts_ns")
    assert (d.n == 1).all(), d[d.n > 1]  # no bar decided twice
    print(f"prediction killed 4 times ({model}): caught up {stats.get('prediction', {}).get('caught_up', 0)} bars in its last life, trading recovered {t.get('regimes_recovered', 0)} regimes by asking")

def test_limit_orders_survive_kill_9_of_each_service_losing_no_fill_and_duplicating_no_order(tmp_path, registry):
    "execution='limit' under kill -9 of every service in turn, as market orders are: the book is the broker's fills, every fill booked once, no order sent twice or under a new id."
    from regime_nb.broker import RemoteBroker
    cfg = cfg_for(tmp_path, registry, speed=30.0, execution={"kind": "limit", "timeout_bars": 1})  # ~34 s of replay: the kills land during it
    sup, checks = Supervisor(cfg, out=quiet), {}
    def reconcile(s):
        b = RemoteBroker(cfg.endpoints["broker"], timeout_ms=3000)
        st = Store(cfg.store)
        checks.update(account=b.account(), positions=b.positions(), broker_fills=b.fills(), broker_orders=b.orders(), store_fills=st.fills(),
                      store_cash=st.cash_from_fills(cfg.init_cash), store_pos=st.position(cfg.symbol)["qty"], orders=st.query_df("SELECT * FROM orders"))
        b.close()
    res = {}
    th = threading.Thread(target=lambda: res.update(stats=sup.run(150, before_stop=reconcile)), daemon=True); th.start()
    st = Store(cfg.store)
    victims = ["trading", "broker", "prediction", "features", "trading", "feed", "broker", "trading"]
    killed = kill_when_trading(sup, victims, st, seed=5, every_bars=60)
    th.join(180)
    assert set(killed) == set(victims) and sum(killed.values()) == len(victims), killed  # every kill landed while trading was under way
    assert all(sup.restarts.get(v, 0) >= n for v, n in killed.items()), (killed, sup.restarts)
    bf, bo = assert_nothing_lost(checks, cfg, min_fills=11)
    lim = [c for c in bo if not c.endswith(".m")]
    assert len({int(c.rsplit("-", 1)[1]) for c in lim}) == len(lim) > 10  # one limit order per bar at most: nothing sent twice under a new id
    assert all(c[:-2] in bo for c in bo if c.endswith(".m"))  # the rest of an exit at market only for a limit order the broker had
    assert all(s.filled_qty <= s.qty * (1 + 1e-12) for s in bo.values())  # and nothing filled twice
    assert st.integrity_check() and Store(cfg.market_store).integrity_check()
    t = res["stats"]["trading"]
    print(f"limit orders, kill -9 x{len(victims)}: {len(lim)} limit orders, {len(bf)} fills, done={t.get('done')}, undecided {t.get('undecided', 0)}, book resyncs {t.get('book_resyncs', 0)}")

@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_start_up_is_reported_phase_by_phase(tmp_path, registry, start_method):
    "While the services start, the summary line says what each one is doing; every service logs its phases in order, and trading's first bar comes after all are ready."
    lines = []
    sup = Supervisor(cfg_for(tmp_path, registry, start_method=start_method), out=lines.append, summary_every_s=0.2)
    th = threading.Thread(target=lambda: sup.run(120), daemon=True); th.start()
    t_end = time.time() + 90
    while time.time() < t_end and not sup.stats.get("trading", {}).get("first_bar_ns"): time.sleep(0.02)
    sup.stopping = True; th.join(30)
    assert lines and lines[0].startswith("[live] starting ("), lines[:3]  # 0.2 s in, not every service is ready
    phases = ("importing", "loading data", "loading model", "warming kernels", "waiting for")
    said = [p for p in lines[0].split(": ", 1)[1].split(", ")]  # 'feed loading data sp500', ...
    assert said and all(any(ph in s for ph in phases) for s in said), lines[0]  # each one not ready says what it is doing
    if start_method == "spawn": assert "importing" in lines[0], lines[0]  # a spawned interpreter imports first; a forked service has imported
    logs = {n: [p for p, *_ in sup.phase_files[n].read()["log"]] for n in sup.units}
    assert logs == {"broker": ["ready"], "feed": ["loading data", "warming kernels", "waiting for", "ready"], "features": ["loading data", "warming kernels", "waiting for", "ready"],
                    "prediction": ["loading model", "warming kernels", "waiting for", "ready"], "trading": ["loading data", "loading model", "warming kernels", "waiting for", "ready"]}, logs
    ready_ns = max(sup.phase_files[n].read()["log"][-1][2] for n in sup.units)
    assert sup.stats["trading"]["first_bar_ns"] >= ready_ns and sup.stats["trading"]["phase"] == "ready"
    assert any(l.startswith("[live] bars ") for l in lines), lines[-3:]
