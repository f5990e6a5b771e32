"Monitoring as an operator relies on it: drift scores against scipy, alert episodes, a webhook that fails and recovers, metrics scraped during a live run."
import json, socket, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import numpy as np, pandas as pd
import pytest
from scipy.stats import ks_2samp
from regime_nb.core import load_settings
from regime_nb.monitor import PSI_EPS, AlertBook, BookWatch, FeatureDrift, Monitor, RetrainTrigger, Verdict, WebhookSender, run_monitor
from regime_nb.registry import training_profile
from regime_nb.store import Store

def psi_ref(train, live, bins=10):
    "PSI computed directly: training deciles, np.histogram of both, proportions floored."
    edges = np.r_[-np.inf, np.quantile(train, np.arange(1, bins) / bins), np.inf]
    e, a = np.histogram(train, edges)[0] / len(train), np.histogram(live, edges)[0] / len(live)
    e, a = np.maximum(e, PSI_EPS), np.maximum(a, PSI_EPS)
    return float(((a - e) * np.log(a / e)).sum())

@pytest.fixture
def profile():
    rng = np.random.default_rng(1)
    train = pd.DataFrame(rng.standard_normal((1000, 4)), columns=list("abcd"))
    return train, training_profile(train, np.tile([0.8, 0.2], (1000, 1))), rng

def test_drift_scores_equal_scipy_and_a_one_sigma_shift_raises_one_alert(tmp_path, profile):
    train, prof, rng = profile
    mon = Monitor(tmp_path/"m.sqlite", settings=load_settings(env={}), registry=tmp_path)
    same = pd.DataFrame(rng.standard_normal((250, 4)), columns=list("abcd"))
    for live, shifted in ((same, None), (same.assign(c=same["c"] + 1.0), "c")):
        b = BookWatch("spx", 250); b.drift = FeatureDrift(prof, window=250).update(live)
        sc = b.drift.scores()
        for f in "abcd":
            assert abs(sc.loc[f, "ks"] - ks_2samp(train[f], live[f]).statistic) < 1e-12
            assert abs(sc.loc[f, "psi"] - psi_ref(train[f], live[f])) < 1e-12
        new = mon.alerts.apply(mon.book_verdicts(b))
        assert [a["episode"] for a in new] == ([] if shifted is None else [f"feature_drift:spx:{shifted}"]), new
    assert len(Store(tmp_path/"m.sqlite").alerts()) == 1

def test_each_poll_records_the_scores_it_judged_and_the_dashboard_reads_the_latest(tmp_path, profile):
    from regime_nb.dashboard import MonitorSource
    from regime_nb.monitor import RegimeDrift
    train, prof, rng = profile
    mon = Monitor(tmp_path/"m.sqlite", settings=load_settings(env={}), registry=tmp_path)
    same = pd.DataFrame(rng.standard_normal((250, 4)), columns=list("abcd"))
    b = mon.books["spx"] = BookWatch("spx", 250)
    b.drift, b.regimes = FeatureDrift(prof, window=250).update(same), RegimeDrift(prof, window=250).update(np.tile([0.8, 0.2], (250, 1)))
    src = MonitorSource(tmp_path/"m.sqlite", book="spx")
    levels = lambda: src.drift().set_index("name").level.to_dict()
    mon.poll(); src.refresh()
    assert levels() == {n: "ok" for n in ["a", "b", "c", "d", "regime_frequencies", "entropy", "mean_duration", "switch_rate"]} and not mon.alerts.open, levels()
    b.drift.update(same.assign(c=same["c"] + 1.0)); mon.poll(); src.refresh()
    lv = levels(); assert lv.pop("c") in ("warning", "critical") and set(lv.values()) == {"ok"}, levels()
    b.drift.update(same); mon.poll(); src.refresh()  # the shift is gone: recorded as such, the episode cleared
    assert set(levels().values()) == {"ok"} and not mon.alerts.open
    rows = Store(tmp_path/"m.sqlite").query_df("SELECT name, level FROM monitor_scores WHERE name = 'c' ORDER BY id")
    assert rows.level.fillna("ok").tolist() in (["ok", "warning", "ok"], ["ok", "critical", "ok"]), rows

def test_alert_episodes_are_recorded_once_and_their_clearing_too(tmp_path):
    st = Store(tmp_path/"m.sqlite"); book = AlertBook(st)
    down = Verdict("service_health:prediction", "critical", "service_health", "prediction is down")
    for _ in range(10): book.apply([down])
    AlertBook(st).apply([down])  # a restarted monitor knows the episode is open
    book.apply([Verdict("service_health:prediction", None, "service_health", "prediction is ok")])
    book.apply([Verdict("service_health:prediction", None, "service_health", "prediction is ok")])
    book.apply([down])  # down again: a new episode
    al = st.alerts()
    assert al["level"].tolist() == ["critical", "info", "critical"] and al["message"].tolist()[1] == "cleared: prediction is ok"
    assert al["cleared_ns"].notna().tolist() == [True, True, False] and len(st.open_episodes()) == 1

class Hook(BaseHTTPRequestHandler):
    mode, got, lock = "hang", [], threading.Lock()
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = Hook.mode  # decided on arrival: a request that hung is lost (a client that timed out cannot know whether it was taken)
        if mode == "hang": time.sleep(3.0)
        if mode != "ok":
            try: self.send_response(503); self.end_headers()
            except OSError: pass  # the client gave up
            return
        with Hook.lock: Hook.got.append(body["text"])
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass

def test_a_webhook_that_hangs_fails_and_recovers_loses_nothing_and_nobody_waits(tmp_path):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hook); srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    st = Store(tmp_path/"m.sqlite", synchronous="NORMAL")
    ws = WebhookSender(tmp_path/"m.sqlite", f"http://127.0.0.1:{srv.server_address[1]}/hook", timeout_s=0.5, max_backoff_s=0.2).start()
    book = AlertBook(st, on_new=ws.notify)
    try:
        times = []
        for i in range(30):  # while the webhook hangs
            t = time.perf_counter(); new = book.apply([Verdict(f"e{i}", "warning", "feature_drift", f"drift {i}")]); times.append(time.perf_counter() - t)
            assert len(new) == 1
            time.sleep(0.02)
        time.sleep(1.0); Hook.mode = "fail"; time.sleep(1.0)
        assert Hook.got == [] and len(st.outbox()) == 30 and ws.failed >= 2
        Hook.mode = "ok"
        deadline = time.time() + 20
        while time.time() < deadline and st.outbox(): time.sleep(0.05)
        assert Hook.got == [f"[WARNING] feature_drift (monitor): drift {i}" for i in range(30)]  # every alert, once, in order
        al = st.alerts()  # the failures are on record with the alerts they held up
        assert al["notify_error"].iloc[0].startswith("<HTTPError 503") and al["notify_attempts"].iloc[0] >= 3 and (al["notify_attempts"].iloc[1:] == 1).all()
        print(f"raising an alert while the webhook hangs: median {np.median(times) * 1e3:.3f} ms, max {max(times) * 1e3:.3f} ms")
        assert np.median(times) < 1e-3 and max(times) < 0.05, times  # a WAL commit (synchronous=NORMAL); never the webhook's 3 s
    finally: ws.stop(); srv.shutdown()

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    "A GMM(2) fitted on the S&P 500 up to 2014, registered (with its training profile) and promoted to champion."
    from regime_nb.data import load_dataset
    from regime_nb.features import FeatureSpec, compute_features
    from regime_nb.regimes import GMMRegime
    from regime_nb.registry import Registry
    d = tmp_path_factory.mktemp("reg"); sp = load_dataset("sp500")
    m = GMMRegime(2).fit(compute_features(sp).loc[:"2014"])
    with Registry(d) as reg:
        v = reg.register(m, spec=FeatureSpec.default(), data=sp.loc[:"2014"], symbol="sp500")
        assert reg.show(v)["profile"] is not None
        reg.promote(v, "champion", reason="tests")
    return str(d)

def _scrape(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l and not l.startswith("#")}

def test_a_scrape_during_a_live_run_shows_the_figures_moving(tmp_path, registry):
    import test_live as tl
    cfg = tl.cfg_for(tmp_path, registry, speed=80.0)  # 1006 bars in about 13 s
    with socket.socket() as so: so.bind(("127.0.0.1", 0)); port = so.getsockname()[1]
    s = load_settings(env={}, overrides={"monitor.poll_s": 0.2, "monitor.metrics_port": port})
    sup, th, res = tl.run_in_thread(cfg, 120, bars=20)
    stop, out = threading.Event(), {}
    mt = threading.Thread(target=lambda: out.update(mon=run_monitor(cfg.store, market=cfg.market_store, registry=cfg.registry, settings=s, stop=stop)), daemon=True); mt.start()
    try:
        scrapes, deadline = [], time.time() + 60
        while time.time() < deadline and len(scrapes) < 3:
            time.sleep(2.0)
            try: m = _scrape(port)
            except OSError: continue
            if m.get('rnb_bars_total{book="sp500"}'): scrapes.append(m)
        th.join(150)
        assert res["stats"]["trading"]["done"], res
        time.sleep(1.0); final = _scrape(port)
    finally: stop.set(); mt.join(10)
    bars = [m['rnb_bars_total{book="sp500"}'] for m in scrapes] + [final['rnb_bars_total{book="sp500"}']]
    print("bars_total at each scrape:", bars, "equity:", [m.get('rnb_equity{book="sp500"}') for m in scrapes])
    assert len(scrapes) == 3 and bars == sorted(bars) and bars[0] < bars[2] < bars[-1], bars  # moving while bars flow, and after
    assert len({m['rnb_prediction_latency_seconds_count{book="sp500"}'] for m in scrapes}) == 3
    assert final['rnb_fills_total{book="sp500"}'] == len(Store(cfg.store).fills()) > 0
    assert final['rnb_equity{book="sp500"}'] == Store(cfg.store).query_one("SELECT equity FROM equity ORDER BY ts_ns DESC LIMIT 1")[0]
    assert 'rnb_feature_psi{book="sp500",feature="realized_vol_20"}' in final and final['rnb_model_version{book="sp500"}'] >= 1

def test_a_champion_outside_its_validation_figures_for_n_bars_is_rolled_back(tmp_path):
    from sklearn.mixture import GaussianMixture
    from regime_nb.registry import Registry
    X = np.random.default_rng(0).standard_normal((200, 2))
    with Registry(tmp_path/"reg") as reg:
        v1, v2 = (reg.register(GaussianMixture(2, random_state=0).fit(X), metrics={"validation_sharpe": 1.5, "validation_hit_rate": 0.55}) for _ in range(2))
        reg.promote(v1, reason="first"); reg.promote(v2, reason="second")
    st, mk = Store(tmp_path/"run.sqlite"), Store(tmp_path/"run.market.sqlite", synchronous="NORMAL")
    ts = pd.date_range("2020-01-01", periods=120, freq="D", tz="UTC").as_unit("ns").asi8
    mk.record_bar_block("spx", ts, np.tile([100.0, 101, 99, 100, 1e6], (120, 1)))
    mk.record_prediction_block("spx", ts, np.tile([0.9, 0.1], (120, 1)), v2)
    eq = 1e5 * np.cumprod(np.where(np.arange(120) % 3 == 0, 1.002, 0.998))  # loses: Sharpe < 0, hit rate 1/3
    st.record_equity_rows([(t, 0.0, e, {}, 0.0) for t, e in zip(ts, eq)])
    s = load_settings(env={}, overrides={"monitor.rollback_after_bars": 10})
    mon = Monitor(tmp_path/"run.sqlite", registry=tmp_path/"reg", settings=s)
    mon.poll()
    b = mon.books["spx"]
    assert b.why and "live Sharpe" in b.why and mon.rollbacks == [(v2, v1)], (b.why, mon.rollbacks)
    with Registry(tmp_path/"reg") as reg:
        assert reg.resolve("champion") == v1
        h = reg.history("champion").iloc[-1]
        assert h.kind == "rollback" and "outside its validation figures for 10 bars in a row" in h.reason, h
    al = st.alerts()
    assert "rollback" in al["kind"].tolist() and al.loc[al.kind == "rollback", "level"].tolist() == ["critical"]
    assert "performance" in al["kind"].tolist()  # and the performance episode is open
    mon.poll(); assert mon.rollbacks == [(v2, v1)]  # once per version

def test_cli_monitor_once_prints_what_is_wrong(cli, tmp_path):
    r = cli("monitor", "--store", tmp_path/"none.sqlite", "--once")
    assert r.returncode == 2 and "no such store" in r.stderr
    st = Store(tmp_path/"run.sqlite"); st.heartbeat("broker", "down", "silent for 3 heartbeats"); st.heartbeat("feed", "ok")
    r = cli("monitor", "--store", tmp_path/"run.sqlite", "--registry", tmp_path/"reg", "--once")
    assert r.returncode == 1 and "critical broker_connectivity: broker is down" in r.stdout and "1 findings" in r.stdout, (r.stdout, r.stderr)
