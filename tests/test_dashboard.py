"The Voila dashboards in a real browser (Debian's chromium driven by Playwright) against a Voila server each test starts."
import http.client, os, socket, subprocess, time, urllib.error, urllib.request
from pathlib import Path
import pytest
from regime_nb.dashboard import voila_command
from test_live import cfg_for, registry, run_in_thread  # the live loop's fixtures

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent/"output"/"screenshots"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)")

def free_port() -> int:
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def wait_http(url, timeout_s=90.0) -> int:
    "Poll `url` until the server answers; its status code."
    t_end = time.time() + timeout_s
    while time.time() < t_end:
        try: return urllib.request.urlopen(url, timeout=5).status
        except urllib.error.HTTPError as e: return e.code
        except OSError: time.sleep(0.2)
    raise TimeoutError(f"no answer from {url} within {timeout_s} s")

class Voila:
    "A Voila server of one dashboard, as `regime-nb dashboard` runs it."
    def __init__(self, name, tmp_path, token=None, **params):
        self.port = free_port()
        argv, env, self.token = voila_command(name, port=self.port, token=token, **params)
        self.log = open(tmp_path/f"voila-{name}.log", "w")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/" + (f"?token={self.token}" if self.token else "")
        wait_http(self.url)
    def close(self):
        self.proc.terminate()
        try: self.proc.wait(15)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        self.log.close()

@pytest.fixture
def serve(tmp_path):
    servers = []
    def start(name, **kw): servers.append(Voila(name, tmp_path, **kw)); return servers[-1]
    yield start
    for s in servers: s.close()

@pytest.fixture(scope="module")
def browser():
    pw_api = pytest.importorskip("playwright.sync_api")
    with pw_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()

def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True); page.screenshot(path=str(SHOTS/f"{name}.png"), full_page=True)

def no_source_visible(page):
    html = page.content()
    for code in ("dashboard_params(", "def update", "async def refresh", "import ipywidgets"): assert code not in html, code

def test_the_monitor_page_renders_the_regime_chart_and_its_numbers_move_with_the_live_loop(tmp_path, registry, serve, browser):
    import threading
    from regime_nb.core import load_settings
    from regime_nb.monitor import run_monitor
    cfg = cfg_for(tmp_path, registry, speed=8.0)  # about 125 s of bars: still flowing once the page is up on a loaded machine (at 20/s a CI run at load 9 ran out of bars first); the test ends at the first move
    sup, th, res = run_in_thread(cfg, 300, bars=40)
    stop = threading.Event()  # the monitor beside the live run, as `regime-nb monitor --store` runs it: it records the drift scores the page shows
    mt = threading.Thread(target=run_monitor, args=(cfg.store,), kwargs=dict(market=cfg.market_store, registry=registry, port=0, stop=stop,
                          settings=load_settings(env={}, overrides={"monitor.poll_s": 0.5})), daemon=True); mt.start()
    try:
        v = serve("monitor", store=cfg.store, registry=registry, run_dir=cfg.run_dir)
        page = browser.new_page(viewport=dict(width=1500, height=1000))
        page.goto(v.url, timeout=60_000)
        page.wait_for_selector("img.rnb-regime-chart[src^='blob:']", timeout=60_000)  # drawn, not only placed
        page.wait_for_function("() => !/^-?$/.test(document.querySelector('.rnb-bars').innerText.trim())", timeout=30_000)
        first = page.inner_text(".rnb-last-ts")
        try: page.wait_for_function(f"() => document.querySelector('.rnb-last-ts').innerText.trim() !== {first.strip()!r}", timeout=30_000)  # in place, no reload
        except Exception: raise AssertionError(f"the page stayed at {first} while the loop traded {sup.stats.get('trading', {}).get('bars')} bars: {page.inner_text('.rnb-status')}")
        assert page.inner_text(".rnb-regime").strip() in ("0", "1") and page.inner_text(".rnb-equity").strip() != "-"
        assert page.query_selector("table.rnb-health") is not None and page.query_selector("table.rnb-services") is not None
        page.wait_for_selector("table.rnb-drift", timeout=30_000)
        rows = page.eval_on_selector_all("table.rnb-drift tbody tr", "rs => rs.map(r => Array.from(r.cells).map(c => c.innerText.trim()))")
        head = page.eval_on_selector_all("table.rnb-drift thead th", "hs => hs.map(h => h.innerText.trim())")
        got = {(r[head.index("kind")], r[head.index("name")]): r[head.index("level")] for r in rows}
        from regime_nb.features import FeatureSpec
        assert {n for k, n in got if k == "feature_drift"} == set(FeatureSpec.default().columns) and ("prediction_drift", "regime_frequencies") in got, got
        assert set(got.values()) <= {"ok", "warning", "critical"}, got
        assert "failed" not in page.inner_text(".rnb-status"), page.inner_text(".rnb-status")
        no_source_visible(page); shot(page, "monitor")
    finally:
        sup.stopping = True; stop.set(); th.join(30); mt.join(10)

def test_the_monitor_page_switches_every_section_to_the_book_chosen(tmp_path, serve, browser):
    import numpy as np, pandas as pd
    from regime_nb.store import Store
    st, mk = Store(tmp_path/"store.sqlite"), Store(tmp_path/"store.market.sqlite")
    ts = pd.date_range("2020-01-01", periods=60, freq="D", tz="UTC").as_unit("ns").asi8
    for sym, p0, n in (("nasdaq", [0.2, 0.8], 40), ("sp500", [0.9, 0.1], 60)):  # two books of one account, as a live run with LiveConfig.books records them
        mk.record_bar_block(sym, ts[:n], np.tile([100.0, 101, 99, 100, 1e6], (n, 1))); mk.record_prediction_block(sym, ts[:n], np.tile(p0, (n, 1)), 1)
        st.record_equity_rows([(t, 0.0, 1.0 + i / 1e3, {sym: 0.5}, 0.0) for i, t in enumerate(ts[:n])], book=sym)
        st.record_scores(sym, [dict(kind="feature_drift", name=f"{sym}_feature", psi=0.6, ks=0.3, n=n, level="critical")], model_version=1)
    v = serve("monitor", store=str(tmp_path/"store.sqlite"))
    page = browser.new_page(viewport=dict(width=1500, height=1000))
    page.goto(v.url, timeout=60_000)
    page.wait_for_function("() => { const b = document.querySelector('.rnb-book'); return b && b.innerText.trim() === 'nasdaq'; }", timeout=60_000)
    assert page.inner_text(".rnb-bars").strip() == "40" and page.inner_text(".rnb-regime").strip() == "1" and "nasdaq_feature" in page.inner_text("table.rnb-drift")
    page.select_option(".rnb-book-select select", "sp500")
    page.wait_for_function("() => document.querySelector('.rnb-book').innerText.trim() === 'sp500'", timeout=30_000)
    page.wait_for_function("() => document.querySelector('.rnb-bars').innerText.trim() === '60'", timeout=30_000)
    assert page.inner_text(".rnb-regime").strip() == "0" and page.inner_text(".rnb-equity").strip() == "1.059000"
    page.wait_for_function("() => document.querySelector('table.rnb-drift').innerText.includes('sp500_feature')", timeout=30_000)  # the sections follow the figures
    assert "nasdaq_feature" not in page.inner_text("table.rnb-drift")
    page.wait_for_selector(".rnb-status:has-text('book sp500')", timeout=30_000)  # and the charts redrawn for it (the status line is written last)
    no_source_visible(page); shot(page, "monitor-books")

def test_the_research_page_recomputes_when_a_widget_changes(tmp_path, serve, browser):
    v = serve("research")
    page = browser.new_page(viewport=dict(width=1300, height=1000))
    page.goto(v.url, timeout=120_000)
    page.wait_for_selector(".rnb-status:has-text('run 1')", timeout=120_000)
    before = page.inner_text(".rnb-stats-box")
    box = page.locator(".rnb-exposures input"); box.fill("1.5,0.3"); box.press("Enter")
    page.wait_for_selector(".rnb-status:has-text('run 2')", timeout=30_000)
    assert page.inner_text(".rnb-stats-box") != before and page.query_selector("table.rnb-folds") is not None
    no_source_visible(page); shot(page, "research")

def test_with_a_token_a_request_without_it_is_refused(tmp_path, serve, browser):
    v = serve("runs", token="s3cret-token", store=str(tmp_path/"none.sqlite"), registry=str(tmp_path/"reg"))
    def get(path):
        c = http.client.HTTPConnection("127.0.0.1", v.port, timeout=90); c.request("GET", path); r = c.getresponse()  # the page itself waits for its kernel's notebook
        return r.status, r.getheader("Location") or "", r.read()
    for path in ("/", "/?token=wrong", "/voila/render/runs.ipynb", "/api/kernels"):
        status, where, body = get(path)
        assert (status, where.split("?")[0], body) == (302, "/login", b""), (path, status, where)  # sent to the login page, nothing of the dashboard
    assert get(f"/?token={v.token}")[0] == 200
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{v.port}/", timeout=60_000)
    assert page.query_selector(".rnb-runs-box") is None  # no dashboard without the token
    page.goto(v.url, timeout=60_000)
    page.wait_for_selector(".rnb-runs:has-text('no runs recorded')", timeout=60_000)
    no_source_visible(page); shot(page, "runs")
