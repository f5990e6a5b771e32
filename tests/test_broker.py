"The broker in its own process over TCP: a round trip, SIGKILLed clients that resolve their orders by client order id after a restart, and resends after lost replies that never double-fill."
import json, math, multiprocessing as mp, os, random, select, signal, sqlite3, subprocess, sys, threading, time
import pytest
import zmq
from regime_nb import broker as brk
from regime_nb.broker import Order, RemoteBroker
from regime_nb.bus import RequestTimeout

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")


@pytest.fixture
def broker_process():
    "Start `run_broker_process` in a spawned process; yield a function that starts it with SimBroker settings and returns the endpoint."
    ctx = mp.get_context("spawn")
    started = []
    def start(**kw):
        parent, child = ctx.Pipe()
        stop = ctx.Event()
        p = ctx.Process(target=brk.run_broker_process, args=("tcp://127.0.0.1:*", child, stop), kwargs=kw, daemon=True)
        p.start()
        started.append((p, stop))
        assert parent.poll(60), "the broker process did not report its endpoint"
        return parent.recv()
    yield start
    for p, stop in started:
        stop.set(); p.join(10)
        if p.is_alive(): p.kill(); p.join(5)
        assert p.exitcode == 0, p.exitcode


def test_round_trip(broker_process):
    "Submit, latency, ack, fill, positions and account through a broker in another process."
    ep = broker_process(init_cash=10_000.0, fee_bps=10.0, fee_fixed=0.5, fee_per_unit=0.01, latency_ns=5_000_000)
    rb = RemoteBroker(ep, timeout_ms=2000)
    try:
        rb.on_quote("X", 99.9, 100.1, 1_000_000)
        a = rb.submit(Order("o1", "X", 1, 10.0, "limit", 100.2, "entry", ts_ns=1_000_000))
        assert (a.accepted, a.status) == (True, "new")  # not at the market before its latency has passed
        assert rb.on_quote("X", 99.9, 100.1, 5_999_999) == [] and rb.order_status("o1").status == "new"
        f, = rb.on_quote("X", 100.0, 100.2, 6_000_000)
        assert (f.client_order_id, f.qty, f.price, f.seq) == ("o1", 10.0, 100.2, 1)
        assert math.isclose(f.fee, 10 * 100.2 * 1e-3 + 0.5 + 0.1, rel_tol=1e-12)
        st = rb.order_status("o1")
        assert (st.status, st.filled_qty, st.avg_price) == ("filled", 10.0, 100.2)
        assert rb.positions() == {"X": 10.0}
        acct = rb.account()
        assert acct["cash"] == 10_000.0 - (10.0 * 100.2 + f.fee) and acct["fees_paid"] == f.fee
        assert acct["equity"] == acct["cash"] + 10.0 * 100.1
        assert rb.fills() == [f] and rb.fills(1) == []
        r = rb.submit(Order("o2", "X", 1, -1.0, "market"))
        assert (r.accepted, r.status, r.reason) == (False, "rejected", "qty=-1.0: expected a finite number > 0")
        assert rb.order_status("o3").status == "unknown"
    finally: rb.close()


# A trading client that journals every order before sending it (write-ahead) and every fill it books, in SQLite.
# On a restart it rebuilds its ledger from the journal, asks the broker about every journaled order by client order id
# (`resolve_open_orders`), catches up on fills since the last sequence number it booked, and carries on with the next decision.
CLIENT = r"""
import json, sqlite3, sys, time
from dataclasses import asdict
from regime_nb.broker import Fill, Ledger, Order, OrderManager, RemoteBroker
endpoint, db, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = sqlite3.connect(db, isolation_level=None)
con.execute("PRAGMA journal_mode=WAL"); con.execute("PRAGMA synchronous=FULL")
con.execute("CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
con.execute("CREATE TABLE IF NOT EXISTS fills (trade_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL)")
def journal(o): con.execute("INSERT OR IGNORE INTO orders VALUES (?, ?)", (o.client_order_id, json.dumps(o.to_dict())))
ledger = Ledger(10_000.0)
for (body,) in con.execute("SELECT body FROM fills ORDER BY seq"): ledger.apply(Fill.from_dict(json.loads(body)))
rb = RemoteBroker(endpoint, timeout_ms=1000, retries=4)
om = OrderManager(rb, "X", ack_timeout_ns=40_000_000, fill_timeout_ns=250_000_000, journal=journal)
known = [Order.from_dict(json.loads(b)) for (b,) in con.execute("SELECT body FROM orders ORDER BY rowid")]
om.resolve_open_orders(known, resubmit_unknown=True, now_ns=time.time_ns())
def sync():
    for f in rb.fills(ledger.last_seq):
        con.execute("INSERT OR IGNORE INTO fills VALUES (?, ?, ?)", (f.broker_trade_id, f.seq, json.dumps(asdict(f))))
        ledger.apply(f)
sync()
done = {o.client_order_id for o in known}
print("started", len(done), flush=True)
for i in range(n):
    cid = f"d{i}"
    if cid in done: continue
    side = 1 if i % 3 else -1
    om.place(side * (1 + i % 4), "entry" if i % 2 == 0 else "exit", 100.0 + 0.01 * side * (i % 3 - 1), now_ns=time.time_ns(), client_order_id=cid)
    for _ in range(3):
        om.on_timer(time.time_ns()); sync(); time.sleep(0.005)
deadline = time.time() + 30
while om.refresh() and time.time() < deadline:
    om.on_timer(time.time_ns()); sync(); time.sleep(0.01)
sync()
print(json.dumps(dict(open=om.open_orders(), positions=ledger.positions, cash=ledger.cash, fees=ledger.fees_paid)), flush=True)
"""

def _line(p, timeout=30):
    r, _, _ = select.select([p.stdout], [], [], timeout)
    assert r, f"process printed nothing in {timeout} s: {p.stderr.read() if p.poll() is not None else ''}"
    return p.stdout.readline().strip()

def _feed(endpoint, stop):
    "Drive the broker with quotes oscillating around 100 (2 units at the touch) until `stop`."
    rb, k = RemoteBroker(endpoint, timeout_ms=2000), 0
    try:
        while not stop.is_set():
            mid = 100.0 + 0.05 * math.sin(k / 15); k += 1
            rb.on_quote("X", round(mid - 0.01, 4), round(mid + 0.01, 4), time.time_ns(), 2.0)
            time.sleep(0.003)
    finally: rb.close()


def test_sigkill_client_resolves_by_client_order_id(tmp_path):
    "Kill -9 the client at random moments; after each restart nothing is duplicated or lost and the journal equals the broker."
    server = subprocess.Popen([sys.executable, "-m", "regime_nb.broker", "--init-cash", "10000", "--fee-bps", "2", "--fee-per-unit", "0.01",
                               "--latency-ns", "20000000", "--latency-jitter-ns", "60000000", "--max-fill-fraction", "0.5", "--seed", "3"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, feeder = threading.Event(), None
    try:
        ep = _line(server)
        assert ep.startswith("tcp://127.0.0.1:"), ep
        feeder = threading.Thread(target=_feed, args=(ep, stop)); feeder.start()
        db, n, rng = tmp_path / "client.db", 60, random.Random(1)
        spawn = lambda: subprocess.Popen([sys.executable, "-c", CLIENT, ep, str(db), str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        starts = []
        for _ in range(3):
            p = spawn()
            starts.append(int(_line(p).split()[1]))
            time.sleep(rng.uniform(0.1, 0.5))
            os.kill(p.pid, signal.SIGKILL); p.wait(10)
            assert p.returncode == -signal.SIGKILL
        p = spawn()
        starts.append(int(_line(p).split()[1]))
        out = json.loads(_line(p, 90)); p.wait(10)
        assert p.returncode == 0, p.stderr.read()
        assert starts[0] == 0 and starts[-1] > 0 and starts == sorted(starts)  # the restarts resumed from the journal
        stop.set(); feeder.join(10)

        rb = RemoteBroker(ep, timeout_ms=2000)
        orders = {o.client_order_id: o for o in rb.orders()}
        decisions = sorted(i for i in orders if "." not in i)
        # every decision reached the broker once, under its own id; the only other ids are derived market orders
        assert decisions == sorted(f"d{i}" for i in range(n))
        assert all(i.endswith(".m") and i[:-2] in orders for i in orders if "." in i)
        for cid in decisions:  # never more than a decision's quantity was filled: no duplicated exposure
            filled = orders[cid].filled_qty + (orders[cid + ".m"].filled_qty if cid + ".m" in orders else 0.0)
            assert filled <= orders[cid].qty + 1e-9, (cid, filled, orders[cid].qty)
            if cid + ".m" in orders: assert orders[cid + ".m"].qty == orders[cid].qty - orders[cid].filled_qty
        assert not [o for o in orders.values() if o.is_open] and out["open"] == []
        assert any(i.endswith(".m") for i in orders) and any(o.status == "cancelled" for o in orders.values())  # both timeout rules ran
        # no fill lost: the client's journal holds exactly the broker's fills; positions and cash equal the broker's
        fills = rb.fills()
        con = sqlite3.connect(db)
        assert sorted(r[0] for r in con.execute("SELECT trade_id FROM fills")) == sorted(f.broker_trade_id for f in fills)
        assert out["positions"] == rb.positions()
        acct = rb.account()
        assert (out["cash"], out["fees"]) == (acct["cash"], acct["fees_paid"])
        assert len(fills) > n // 2
        rb.close()
    finally:
        stop.set()
        if feeder is not None: feeder.join(10)
        server.terminate()
        try: server.wait(10)
        except subprocess.TimeoutExpired: server.kill(); server.wait(5)


class _LossyProxy:
    "A ROUTER/DEALER forwarder in a thread that drops the next `drop` replies to submits (a reply lost in transit)."
    def __init__(self, backend):
        self.ctx = zmq.Context()
        self.front = self.ctx.socket(zmq.ROUTER); self.front.linger = 0; self.front.bind("tcp://127.0.0.1:*")
        self.back = self.ctx.socket(zmq.DEALER); self.back.linger = 0; self.back.connect(backend)
        self.endpoint, self.drop, self.dropped, self.stop = self.front.last_endpoint.decode(), 0, 0, threading.Event()
        self.thread = threading.Thread(target=self.run); self.thread.start()
    def run(self):
        poller = zmq.Poller(); poller.register(self.front, zmq.POLLIN); poller.register(self.back, zmq.POLLIN)
        while not self.stop.is_set():
            ready = dict(poller.poll(20))
            if self.front in ready: self.back.send_multipart(self.front.recv_multipart())
            if self.back in ready:
                frames = self.back.recv_multipart()
                if self.drop > 0 and frames[2] == b"submit": self.drop -= 1; self.dropped += 1; continue
                self.front.send_multipart(frames)
    def close(self):
        self.stop.set(); self.thread.join(5); self.front.close(); self.back.close(); self.ctx.term()


def test_resubmit_after_lost_reply_does_not_double_fill(broker_process):
    "A submit whose reply is lost is resent (by the client's retry, or by the application) and fills once."
    ep = broker_process(init_cash=1000.0)
    proxy = _LossyProxy(ep)
    rb = RemoteBroker(proxy.endpoint, timeout_ms=300, retries=2)
    once = RemoteBroker(proxy.endpoint, timeout_ms=300, retries=0)
    try:
        proxy.drop = 1  # the bus client's own retry resends the same frames
        a = rb.submit(Order("L1", "X", 1, 5.0, "market"))
        assert (proxy.dropped, a.accepted, a.status) == (1, True, "acked") and "duplicate" in a.reason
        proxy.drop = 1  # no retry left: the application resends the same order
        with pytest.raises(RequestTimeout): once.submit(Order("L2", "X", 1, 3.0, "market"))
        a = once.submit(Order("L2", "X", 1, 3.0, "market"))
        assert (proxy.dropped, a.accepted, a.status) == (2, True, "acked")
        fills = rb.on_quote("X", 9.9, 10.0, 1)
        assert sorted((f.client_order_id, f.qty) for f in fills) == [("L1", 5.0), ("L2", 3.0)]
        assert rb.on_quote("X", 9.9, 10.0, 2) == []
        assert rb.positions() == {"X": 8.0} and rb.account()["cash"] == 1000.0 - 80.0
        assert [o.client_order_id for o in rb.orders()] == ["L1", "L2"]
        st = rb.stats()
        assert (st["submits"], st["duplicates"]) == (4, 2)
    finally:
        rb.close(); once.close(); proxy.close()
