"""Dashboard figures: page load with a preheated kernel against a fresh one, and update latency (a bar written to the store -> its time on the
page), with the monitor served by Voila and read by Debian's chromium through Playwright. A page load is split into its phases: the page's
HTML parsed (DOMContentLoaded), the figures and tables on screen (usable: the regime, the equity, the bars shown, the drift table), and the
regime chart drawn; the kernel's own redraw time is read from the page's status line."""
import re, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd
sys.path.insert(0, str(Path(__file__).resolve().parent.parent/"tests"))
from test_dashboard import CHROMIUM, free_port, wait_http
from regime_nb.dashboard import voila_command
from regime_nb.store import Store
from playwright.sync_api import sync_playwright

def store_with_bars(d, n=300):
    st, mk = Store(f"{d}/store.sqlite"), Store(f"{d}/store.market.sqlite", synchronous="NORMAL")
    ts = pd.date_range("2015-01-02", periods=10_000, freq="D", tz="UTC").as_unit("ns").asi8
    def add(i):
        mk.record_bars(pd.DataFrame(dict(symbol="sp500", ts_ns=[ts[i]], open=1.0, high=1.0, low=1.0, close=100 + np.sin(i / 20), volume=1.0)))
        mk.record_prediction_block("sp500", ts[i:i + 1], [[0.6, 0.4] if (i // 50) % 2 else [0.2, 0.8]], model_version=1, latency_us=150.0)
        st.record_equity(int(ts[i]), 0.0, 1.0 + i / 1e4, positions={"sp500": 0.01})
    for i in range(n): add(i)
    st.record_scores("sp500", [dict(kind="feature_drift", name=f"f{k}", psi=0.01 * k, ks=0.02 * k, n=250, level=None) for k in range(6)], model_version=1, bar_ns=ts[n - 1])
    return add, ts

FIGURES = "() => { const b = document.querySelector('.rnb-bars'); return b !== null && !/^-?$/.test(b.innerText.trim()) && document.querySelector('table.rnb-drift') !== null; }"

def page_load(url, browser, n=3) -> list:
    "Seconds from opening the page to: its HTML parsed, its figures and tables on screen, its regime chart drawn; and the kernel's redraw (status line)."
    out = []
    for _ in range(n):
        pg = browser.new_page(); t0 = time.perf_counter()
        pg.goto(url, timeout=120_000, wait_until="domcontentloaded"); t_dom = time.perf_counter() - t0
        pg.wait_for_function(FIGURES, timeout=120_000, polling=20); t_fig = time.perf_counter() - t0
        pg.wait_for_selector("img.rnb-regime-chart[src^='blob:']", timeout=120_000); t_chart = time.perf_counter() - t0
        m = re.search(r"redrawn in ([0-9.]+) s", pg.inner_text(".rnb-status"))
        out.append((t_dom, t_fig, t_chart, float(m.group(1)) if m else float("nan"))); pg.close()
        time.sleep(15)  # the pool (one kernel) refills before the next open (its notebook runs again: about 10 s on a loaded 2-core box)
    return out

def main():
    d = tempfile.mkdtemp(); add, ts = store_with_bars(d)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        res = {}
        for preheat in (True, False):
            port = free_port(); argv, env, _ = voila_command("monitor", port=port, store=f"{d}/store.sqlite", preheat=preheat)
            p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_http(f"http://127.0.0.1:{port}/"); time.sleep(8 if preheat else 0)  # the pool fills
                res[preheat] = page_load(f"http://127.0.0.1:{port}/", browser, n=5 if preheat else 2)
                if preheat:  # update latency: a bar into the store -> its timestamp on the page
                    pg = browser.new_page(); pg.goto(f"http://127.0.0.1:{port}/", timeout=120_000); pg.wait_for_selector(".rnb-last-ts", timeout=120_000)
                    lat, redraw, i, rng = [], [], 300, np.random.default_rng(0)
                    for _ in range(8):
                        time.sleep(1.0 + rng.random()); before = pg.inner_text(".rnb-status"); add(i); want = str(pd.Timestamp(int(ts[i]), tz="UTC")); t0 = time.perf_counter()  # at random phases of the refresh
                        pg.wait_for_function(f"() => document.querySelector('.rnb-last-ts').innerText.trim() === {want!r}", timeout=60_000, polling=20)
                        lat.append(time.perf_counter() - t0); i += 1
                        pg.wait_for_function(f"() => document.querySelector('.rnb-status').innerText !== {before!r}", timeout=30_000, polling=20)  # written after the charts
                        m = re.search(r"redrawn in ([0-9.]+) s", pg.inner_text(".rnb-status")); redraw.append(float(m.group(1)) if m else float("nan"))
                    res["update"], res["redraw"] = lat, redraw
            finally: p.terminate(); p.wait(15)
        browser.close()
    f = lambda xs: f"median {statistics.median(xs):.2f} s (best {min(xs):.2f}, worst {max(xs):.2f}, n={len(xs)})"
    for k, name in ((True, "preheated kernel"), (False, "fresh kernel")):
        r = list(zip(*res[k]))
        print(f"monitor page load, {name}: usable (figures and tables) {f(r[1])}; regime chart drawn {f(r[2])}")
        print(f"    phases: HTML parsed {f(r[0])}; the kernel's first redraw (figures and tables, no charts) {f(r[3])}")
        print(f"    each open, usable: {', '.join(f'{x:.2f}' for x in r[1])} s")
    print(f"ratio fresh / preheated (medians, usable): {statistics.median(list(zip(*res[False]))[1]) / statistics.median(list(zip(*res[True]))[1]):.1f}x")
    print(f"update latency, bar in store -> on page (refresh_s=1): {f(res['update'])}; the kernel's redraw of a new bar (charts included) {f(res['redraw'])}")

if __name__ == "__main__": main()
