"The live-trading record across real processes: SIGKILL of a writer at random moments, and concurrent high-rate writers."
import random, signal, subprocess, sys, time
from collections import defaultdict
import pytest
from regime_nb.store import Store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL and POSIX file semantics")

# The plan of order i (symbol, side, qty, intended price, fills) is a pure function of i: it is what the
# simulated broker knows, so a restarted writer can ask it "by client order id" and the test can check the store.
PLAN = """
import random
SYMBOLS = ("SPX", "NDX", "WTI")
def cid(i): return f"o{i:06d}"
def plan(i):
    r = random.Random(i)
    side = "buy" if r.random() < 0.55 else "sell"
    parts = [r.randint(1, 5) for _ in range(r.randint(1, 4))]
    price = 100.0 + i % 17
    fills = [(f"t{i}-{j}", q, price + 0.25 * j, 0.1 * q) for j, q in enumerate(parts)]
    return SYMBOLS[i % 3], side, sum(parts), price, fills
def reached_broker(i): return i % 5 != 3  # for an order still 'pending' at a restart: did the send get through?
"""
exec(PLAN)  # the same plan in the test

WRITER = PLAN + """
import sys
from regime_nb.store import Store
s, n = Store(sys.argv[1]), int(sys.argv[2])
# 1. resolve what the last run left open, by client order id; never send again under a new id
for o in s.open_orders():
    i = int(o["client_order_id"][1:])
    if o["status"] == "pending" and not reached_broker(i):
        s.mark_order(o["client_order_id"], "cancelled", reason="unknown to the broker after a restart"); continue
    for tid, q, p, fee in plan(i)[4]:
        s.record_fill({"broker_trade_id": tid, "client_order_id": o["client_order_id"], "qty": q, "price": p, "fee": fee})
    s.mark_order(o["client_order_id"], "filled")
# 2. the broker delivers the last fill again after the reconnect: ignored
last = s.query_one("SELECT * FROM fills ORDER BY recorded_ns DESC, rowid DESC LIMIT 1")
if last is not None: assert s.record_fill(dict(last)) is False
# 3. continue after the last recorded order
row = s.query_one("SELECT MAX(client_order_id) FROM orders")[0]
start = 0 if row is None else int(row[1:]) + 1
print("ready", start, flush=True)
for i in range(start, n):
    sym, side, qty, price, fills = plan(i)
    s.record_order_intent({"client_order_id": cid(i), "symbol": sym, "side": side, "qty": qty}, intended_price=price)
    s.mark_order(cid(i), "sent")  # ... the order goes to the broker here ...
    s.mark_order(cid(i), "acked")
    for tid, q, p, fee in fills:
        assert s.record_fill({"broker_trade_id": tid, "client_order_id": cid(i), "qty": q, "price": p, "fee": fee})
    s.mark_order(cid(i), "filled")
print("done", flush=True)
"""

def _run_writer(db, n, kill_after_s=None, early=False):
    "Start a writer; wait for it to finish its restart work (unless `early`); SIGKILL it `kill_after_s` later (or let it finish)."
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if early:  # somewhere in start-up: opening the store, resolving open orders, the first orders
        time.sleep(kill_after_s)
        if p.poll() is not None: raise AssertionError(f"writer exited by itself ({p.returncode}): {p.stderr.read()}")
        p.send_signal(signal.SIGKILL); p.wait(); p.stdout.close(); p.stderr.close()
        return
    line = p.stdout.readline()
    if not line.startswith("ready"):
        p.kill(); p.wait()
        raise AssertionError(f"writer failed on restart: {line!r} {p.stderr.read()}")
    if kill_after_s is None:
        out, err = p.stdout.read(), p.stderr.read()  # not communicate(): readline may have buffered the rest
        p.wait(60); p.stdout.close(); p.stderr.close()
        assert p.returncode == 0 and "done" in out, err
        return
    time.sleep(kill_after_s)
    p.send_signal(signal.SIGKILL); p.wait(); p.stdout.close(); p.stderr.close()
    assert p.returncode == -signal.SIGKILL

def _check(db, final=False):
    "Every invariant the store must keep after a crash; returns the number of open orders."
    with Store(db) as s:
        assert s.integrity_check()
        orders = {o["client_order_id"]: o for o in map(dict, s.query("SELECT * FROM orders"))}
        assert sorted(orders) == [cid(i) for i in range(len(orders))]  # no order duplicated, none skipped
        fills = defaultdict(list)
        for f in s.query("SELECT * FROM fills ORDER BY recorded_ns, rowid"): fills[f["client_order_id"]].append(dict(f))
        assert set(fills) <= set(orders)
        pos, cash = defaultdict(float), 1e6
        for c, o in orders.items():
            sym, side, qty, price, planned = plan(int(c[1:]))
            assert (o["symbol"], o["side"], o["qty"], o["intended_price"]) == (sym, side, qty, price)
            got = [(f["broker_trade_id"], f["qty"], f["price"], f["fee"]) for f in fills[c]]
            assert got == planned[:len(got)], (c, got, planned)  # the fills of an order: a prefix of the broker's, no gap, no duplicate
            filled = sum(f["qty"] for f in fills[c])
            assert o["filled_qty"] == filled
            if filled:
                assert o["avg_fill_price"] == pytest.approx(sum(f["qty"] * f["price"] for f in fills[c]) / filled)
                assert o["status"] == ("filled" if filled == qty else "partially_filled")
            sign = 1 if side == "buy" else -1
            pos[sym] += sign * filled
            cash -= sum(sign * f["qty"] * f["price"] + f["fee"] for f in fills[c])
            if final:  # every order resolved: all its fills, or cancelled because the broker never had it
                if o["status"] == "cancelled": assert not fills[c] and not reached_broker(int(c[1:])) and o["sent_ns"] is None
                else: assert o["status"] == "filled" and len(got) == len(planned)
        stored = {sym: s.position(sym)["qty"] for sym in SYMBOLS}
        assert stored == {sym: pos[sym] for sym in SYMBOLS}
        assert s.cash_from_fills(1e6) == pytest.approx(cash)
        return len(s.open_orders())

def test_sigkill_writer_loses_no_fill_and_duplicates_no_order(tmp_path):
    db, rng = tmp_path/"live.sqlite", random.Random(7)
    Store(db).close()
    open_after_kill = []
    for k in range(20):
        if k % 5 == 4: _run_writer(db, 10**6, kill_after_s=rng.uniform(0.2, 0.7), early=True)
        else: _run_writer(db, 10**6, kill_after_s=rng.uniform(0.0, 0.3))
        open_after_kill.append(_check(db))
    _run_writer(db, 0)  # a last restart resolves what the last kill left open, and sends nothing new
    assert _check(db, final=True) == 0
    with Store(db) as s:
        n, nf = s.query_one("SELECT COUNT(*) FROM orders")[0], s.query_one("SELECT COUNT(*) FROM fills")[0]
    assert n >= 20 and nf >= n  # the kills landed in the middle of real work
    assert sum(k > 0 for k in open_after_kill) >= 3, open_after_kill  # and often with an order in flight

CONCURRENT = """
import sys, time
from pathlib import Path
import numpy as np
from regime_nb.store import Store
db, wid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = Store(db)
Path(db + f".ready{wid}").touch()
while not Path(db + ".go").exists(): time.sleep(0.002)
rng = np.random.default_rng(wid)
for b in range(n):
    ts = [(b * 50 + k) * 60_000_000_000 for k in range(50)]
    s.record_bars([(f"S{wid}", t, 1.0, 2.0, 0.5, 1.5, 100.0) for t in ts] + [("SHARED", t, 1.0, 2.0, 0.5, 1.5, 1.0) for t in ts], source=f"w{wid}")
    p = rng.dirichlet(np.ones(3), size=50)
    s.record_predictions([{"symbol": "SHARED", "ts_ns": t, "model_version": wid, "probs": p[k], "latency_us": 10.0} for k, t in enumerate(ts)])
print("done", flush=True)
"""

def test_concurrent_bar_and_prediction_writers(tmp_path):
    db, n = tmp_path/"live.sqlite", 150
    Store(db).close()
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(db), str(w), str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in (1, 2)]
    t0 = time.monotonic()
    while not all((tmp_path/f"live.sqlite.ready{w}").exists() for w in (1, 2)):
        assert all(p.poll() is None for p in procs) and time.monotonic() - t0 < 30, [p.stderr.read() for p in procs if p.poll() is not None]
        time.sleep(0.01)
    (tmp_path/"live.sqlite.go").touch()
    with Store(db) as reader:  # a reader alongside the writers: never blocked, never sees a half-written batch
        while any(p.poll() is None for p in procs):
            for (c,) in reader.query("SELECT COUNT(*) FROM predictions GROUP BY model_version"): assert c % 50 == 0
            time.sleep(0.01)
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0 and "done" in out, err
    with Store(db) as s:
        assert s.integrity_check()
        counts = dict(s.query("SELECT symbol, COUNT(*) FROM bars GROUP BY symbol"))
        assert counts == {"S1": 50 * n, "S2": 50 * n, "SHARED": 50 * n}
        assert dict(s.query("SELECT model_version, COUNT(*) FROM predictions GROUP BY model_version")) == {1: 50 * n, 2: 50 * n}
        assert s.query_one("SELECT COUNT(*) FROM predictions WHERE abs(json_extract(probs, '$[0]') + json_extract(probs, '$[1]') + json_extract(probs, '$[2]') - 1) > 1e-9")[0] == 0
