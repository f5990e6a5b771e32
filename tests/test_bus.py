"The bus across real processes: a slow subscriber's dropped messages are all detected as gaps, a SIGKILLed server never hangs a client, CURVE keeps strangers out."
import select, signal, socket, subprocess, sys, threading, time
import pytest
import zmq
from regime_nb.bus import Client, HeartbeatMonitor, RequestTimeout, Subscriber, curve_keypair

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")

# A publisher that heartbeats until told "go" on stdin, publishes a burst of N messages as fast as it can,
# then keeps heartbeating (the beats carry its last sequence numbers) until stdin closes.
BURST = """
import select, sys, time
from regime_nb.bus import Publisher, Heartbeat
n, size, hwm = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pub = Publisher("tcp://127.0.0.1:*", "burst", sndhwm=hwm)
hb = Heartbeat(pub, interval_ms=20)
print(pub.endpoint, flush=True)
def wait_line():
    while True:
        hb.tick()
        r, _, _ = select.select([sys.stdin], [], [], 0.01)
        if r: return sys.stdin.readline()
wait_line()
payload = bytes(size)
for i in range(n): pub.publish("md", payload)
wait_line()
pub.close()
"""

SERVER = """
import sys, time
from regime_nb.bus import Server
def handler(m):
    if m.topic == "slow": time.sleep(float(m.body))
    return {"pong": m.body}
srv = Server(sys.argv[1], handler, source="echo")
print("ready", flush=True)
while True: srv.handle(100)
"""

SECURE = """
import sys, time
from regime_nb.bus import Publisher
pub = Publisher("tcp://127.0.0.1:*", "secure", curve={"server_secret": sys.argv[1].encode(), "client_keys": [sys.argv[2].encode()]})
print(pub.endpoint, flush=True)
i = 0
while True:
    pub.publish("md", {"i": i}); i += 1; time.sleep(0.005)
"""

def _spawn(code, *args):
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

def _line(p, timeout=20):
    r, _, _ = select.select([p.stdout], [], [], timeout)
    assert r, f"process printed nothing in {timeout} s: {p.stderr.read() if p.poll() is not None else ''}"
    return p.stdout.readline().strip()

def _stop(p):
    if p.poll() is None: p.kill()
    p.wait(10)

def test_slow_subscriber_gaps_equal_drops():
    "Overflow a slow subscriber's high-water marks: every message is either received or counted in a gap."
    n, hwm = 4000, 20
    p = _spawn(BURST, n, 10_000, hwm)  # 10 kB bodies so that kernel socket buffers hold only a few hundred
    try:
        ep = _line(p)
        mon = HeartbeatMonitor(20)
        sub = Subscriber(ep, topics=["md"], rcvhwm=hwm, monitor=mon)
        t0 = time.monotonic()
        while "burst" not in mon.last:  # the connection is up once a heartbeat arrives
            sub.recv(50); assert time.monotonic() - t0 < 20, "no heartbeat from the publisher"
        p.stdin.write("go\n"); p.stdin.flush()
        while sub.state.get(("burst", "md"), [0, 0])[1] < n:
            if sub.recv(500) is not None: time.sleep(0.0005)  # a slow consumer
            assert time.monotonic() - t0 < 40, f"stalled: received {sub.received}, gaps {sub.gaps}"
        p.stdin.write("stop\n"); p.stdin.flush()
    finally: _stop(p)
    assert sub.gaps > 0, "the burst did not overflow the high-water marks: nothing was dropped"
    assert sub.received + sub.gaps == n, (sub.received, sub.gaps)
    assert sum(g.missing for g in sub.gap_events) == sub.gaps
    assert sub.duplicates == 0 and sub.bad == 0
    print(f"received {sub.received}, lost {sub.gaps} in {len(sub.gap_events)} gaps")

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def test_server_sigkill_then_restart():
    "A client whose server dies mid-request gets RequestTimeout after its retries, never hangs, and works again after a restart."
    ep = f"tcp://127.0.0.1:{_free_port()}"
    p = _spawn(SERVER, ep)
    cli = Client(ep, timeout_ms=300, retries=2)
    try:
        assert _line(p) == "ready"
        r = cli.request("ping", 1)
        assert (r.body, r.seq, r.source) == ({"pong": 1}, 1, "echo")
        threading.Timer(0.1, p.send_signal, args=(signal.SIGKILL,)).start()  # dies while handling the request
        t0 = time.monotonic()
        with pytest.raises(RequestTimeout, match="after 3 attempts of 300 ms"): cli.request("slow", 0.5)
        took = time.monotonic() - t0
        assert 0.85 < took < 2.0, took
        assert p.wait(5) == -signal.SIGKILL
        p = _spawn(SERVER, ep)
        assert _line(p) == "ready"
        r = cli.request("ping", 2)
        assert (r.body, r.seq) == ({"pong": 2}, 3)
    finally:
        cli.close(); _stop(p)

@pytest.mark.skipif(not zmq.has("curve"), reason="this libzmq has no CURVE support (built without libsodium)")
def test_curve_keeps_strangers_out():
    "Across processes, only a subscriber with the server's public key and an allowed client key receives anything."
    spub, ssec = curve_keypair(); cpub, csec = curve_keypair(); opub, osec = curve_keypair()
    p = _spawn(SECURE, ssec.decode(), cpub.decode())
    try:
        ep = _line(p)
        ok = Subscriber(ep, curve={"server_public": spub, "client_public": cpub, "client_secret": csec})
        strangers = [Subscriber(ep),  # no CURVE at all
                     Subscriber(ep, curve={"server_public": spub, "client_public": opub, "client_secret": osec}),  # not allowed
                     Subscriber(ep, curve={"server_public": opub})]  # wrong server key
        assert ok.recv(5000) is not None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0: ok.recv(50)
        assert ok.received > 20
        assert [s.recv(200) for s in strangers] == [None, None, None]
        assert [s.received for s in strangers] == [0, 0, 0]
        for s in (ok, *strangers): s.close()
    finally: _stop(p)
