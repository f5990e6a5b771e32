"""Dashboard figures: page load (open -> regime chart and figures on screen) with a preheated kernel against a fresh one, and update latency
(a bar written to the store -> its time on the page), with the monitor served by Voila and read by Debian's chromium through Playwright."""
import statistics, subprocess, sys, tempfile, time
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
    return add, ts

def page_load(url, browser, n=3) -> list:
    out = []
    for _ in range(n):
        pg = browser.new_page(); t0 = time.perf_counter()
        pg.goto(url, timeout=120_000); pg.wait_for_selector("img.rnb-regime-chart", timeout=120_000)
        pg.wait_for_function("() => !/^-?$/.test(document.querySelector('.rnb-bars').innerText.trim())", timeout=120_000)
        out.append(time.perf_counter() - t0); pg.close()
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
                res[preheat] = page_load(f"http://127.0.0.1:{port}/", browser, n=3 if preheat else 2)
                if preheat:  # update latency: a bar into the store -> its timestamp on the page
                    pg = browser.new_page(); pg.goto(f"http://127.0.0.1:{port}/", timeout=120_000); pg.wait_for_selector(".rnb-last-ts", timeout=120_000)
                    lat, i = [], 300
                    for _ in range(5):
                        time.sleep(1.3); add(i); want = str(pd.Timestamp(int(ts[i]), tz="UTC")); t0 = time.perf_counter()
                        pg.wait_for_function(f"() => document.querySelector('.rnb-last-ts').innerText.trim() === {want!r}", timeout=60_000, polling=20)
                        lat.append(time.perf_counter() - t0); i += 1
                    res["update"] = lat
            finally: p.terminate(); p.wait(15)
        browser.close()
    f = lambda xs: f"median {statistics.median(xs):.2f} s (best {min(xs):.2f}, worst {max(xs):.2f}, n={len(xs)})"
    print(f"monitor page load, preheated kernel: {f(res[True])}")
    print(f"monitor page load, fresh kernel:     {f(res[False])}")
    print(f"ratio fresh / preheated (medians):   {statistics.median(res[False]) / statistics.median(res[True]):.1f}x")
    print(f"update latency, bar in store -> on page (refresh_s=1): {f(res['update'])}")

if __name__ == "__main__": main()
