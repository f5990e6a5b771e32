"""Benchmark: the bus envelope (struct header + msgpack/numpy body) against the same messages JSON-encoded over the same sockets.

Measures, with publisher and subscriber in separate processes over tcp://127.0.0.1:
- encode + decode cost per message (in process);
- PUB -> SUB one-way latency p50/p99 (send time in the header vs receive time) at 1k and 10k msgs/s, paced;
- the highest rate sustained for DURATION_S with zero loss (high-water marks 10,000), and the highest one where the
  subscriber also kept up (p99 latency under BACKLOG_MS, so the queues were not growing).
Figures depend on the machine's load: run `uptime` alongside.

Run: .venv/bin/python bench/bench_bus.py
"""
import json, logging, os, subprocess, sys, time
import numpy as np
import zmq
from regime_nb.bus import Subscriber, decode, encode

DURATION_S = 2.0
RATES = (1_000, 10_000)
REPEATS = 3  # latency runs per case; the machine is shared, so p99 varies from run to run
BACKLOG_MS = 10  # a p99 latency above this means the subscriber fell behind and only the queues saved it
MAX_RATES = (20_000, 50_000, 75_000, 100_000, 150_000, 200_000, 0)  # 0: as fast as the publisher can

def bar(i):
    return {"ts": 1_700_000_000_000_000_000 + i, "open": 100.0 + i % 7, "high": 101.25, "low": 99.5, "close": 100.75, "volume": 12_345.0}

def json_encode(topic, body, seq, source="feed"):
    "The obvious alternative: one JSON object with the same header fields."
    now = time.time_ns()
    return [topic.encode(), json.dumps({"version": 1, "source": source, "seq": seq, "event_ns": now, "send_ns": now, "body": body}).encode()]

def json_decode(frames):
    d = json.loads(frames[1]); d["topic"] = frames[0].decode(); d["recv_ns"] = time.time_ns()
    return d

# The publisher: prints its endpoint, waits for "go", publishes `rate` msgs/s (0: unpaced) for `duration` s,
# then repeats an end marker carrying the count sent until stdin closes.
PUBLISHER = r"""
import json, select, sys, time
import zmq
sys.path.insert(0, sys.argv[4])
from bench_bus import bar, json_encode
from regime_nb.bus import Publisher
mode, rate, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
pub = Publisher("tcp://127.0.0.1:*", "feed")
sock = pub.sock
print(pub.endpoint, flush=True)
def ready(t): return select.select([sys.stdin], [], [], t)[0]
while not ready(0.01): pub.publish("ctl", {"hello": 1})
sys.stdin.readline()
bars = [bar(i) for i in range(1000)]
n, t0 = 0, time.perf_counter()
period, end = (1.0 / rate if rate else 0.0), t0 + duration
send = pub.publish if mode == "bus" else None
while True:
    now = time.perf_counter()
    if now >= end: break
    if period:
        due = t0 + n * period
        if due > now: time.sleep(due - now)  # no spinning: on a small machine a spinning publisher starves the subscriber
    n += 1
    if mode == "bus": pub.publish("md", bars[n % 1000])
    else: sock.send_multipart(json_encode("md", bars[n % 1000], n))
elapsed = time.perf_counter() - t0
while not ready(0.05): pub.publish("ctl", {"sent": n, "elapsed": elapsed})
"""

def run(mode, rate, duration=DURATION_S):
    "One publisher process, this process subscribing; return (sent, received, achieved rate, latencies in us)."
    here = os.path.dirname(os.path.abspath(__file__))
    p = subprocess.Popen([sys.executable, "-c", PUBLISHER, mode, str(rate), str(duration), here],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ep = p.stdout.readline().strip()
        if mode == "bus":
            sub = Subscriber(ep, topics=["md", "ctl"])
            sock = sub.sock
        else:
            sock = zmq.Context.instance().socket(zmq.SUB); sock.linger = 0; sock.rcvhwm = 10_000
            sock.connect(ep); sock.setsockopt(zmq.SUBSCRIBE, b"")
        while True:  # wait until the connection is up
            if not sock.poll(10_000): raise RuntimeError("no message from the publisher in 10 s")
            if sock.recv_multipart()[0] == b"ctl": break
        p.stdin.write("go\n"); p.stdin.flush()
        lat = np.empty(int(max(rate, 200_000) * duration * 1.2) + 10, dtype=np.int64)
        got, sent, elapsed, last_seq, detected = 0, None, None, 0, 0
        t_stop = time.monotonic() + duration + 30
        while time.monotonic() < t_stop:
            if mode == "bus":
                m = sub.recv(1000)
                if m is None: continue
                topic, body, seq, recv_ns, send_ns = m.topic, m.body, m.seq, m.recv_ns, m.send_ns
                if topic == "md": last_seq = seq
            else:
                if not sock.poll(1000): continue
                f = sock.recv_multipart()
                if f[0] == b"ctl": m = decode(f); topic, body = "ctl", m.body
                else:
                    d = json_decode(f); topic, seq, recv_ns, send_ns = "md", d["seq"], d["recv_ns"], d["send_ns"]
                    if seq != last_seq + 1: detected += seq - last_seq - 1
                    last_seq = seq
            if topic == "ctl":
                if "sent" in body: sent, elapsed = body["sent"], body["elapsed"]; break
                continue
            if got < len(lat): lat[got] = recv_ns - send_ns
            got += 1
        if sent is None: raise RuntimeError(f"no end marker from the publisher; received {got}")
        detected = (sub.gaps if mode == "bus" else detected) + sent - last_seq  # gaps plus the tail
        assert detected == sent - got, (detected, sent, got)  # every lost message was detected
        return sent, got, sent - got, sent / elapsed, lat[:min(got, len(lat))] / 1e3
    finally:
        p.stdin.close(); p.wait(10)

def codec_cost(n=50_000):
    "Mean encode + decode time per message in us: (bus bar, JSON bar, bus numpy vector, JSON vector)."
    b, v = bar(1), np.array([0.05, 0.15, 0.8], dtype=np.float64)
    out = []
    for enc, dec, body in ((encode, decode, b), (json_encode, json_decode, b),
                           (encode, decode, v), (json_encode, json_decode, v.tolist())):
        t0 = time.perf_counter()
        for i in range(n): dec(enc("md", body, i))
        out.append((time.perf_counter() - t0) / n * 1e6)
    return out

if __name__ == "__main__":
    logging.getLogger("regime_nb").setLevel(logging.ERROR)  # the loss runs would log every gap; the counts are checked below
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on {os.cpu_count()} cores")
    bus_bar, js_bar, bus_vec, js_vec = codec_cost()
    print(f"encode+decode, OHLCV bar dict: bus {bus_bar:.2f} us, JSON {js_bar:.2f} us, ratio {js_bar / bus_bar:.2f}x")
    print(f"encode+decode, 3-float probability vector: bus (raw numpy) {bus_vec:.2f} us, JSON (list) {js_vec:.2f} us, ratio {js_vec / bus_vec:.2f}x")
    for rate in RATES:
        for mode in ("bus", "json"):
            runs = [run(mode, rate) for _ in range(REPEATS)]
            p = np.array([np.percentile(r[4], [50, 99]) for r in runs])
            i = np.argsort(p[:, 1])[len(runs) // 2]  # the run with the median p99
            sent, got, lost, achieved, lat = runs[i]
            print(f"{mode:4s} latency at {rate:>6,} msgs/s paced, median of {REPEATS} runs of {DURATION_S} s "
                  f"({achieved:,.0f} msgs/s achieved, {sent:,} sent, {lost} lost): p50 {p[i, 0]:.0f} us, p99 {p[i, 1]:.0f} us "
                  f"(p99 over the runs {p[:, 1].min():.0f}..{p[:, 1].max():.0f} us)")
    for mode in ("bus", "json"):
        best = kept_up = 0
        for rate in MAX_RATES:
            sent, got, lost, achieved, lat = run(mode, rate)
            ok, p99_ms = lost == 0 and got == sent, np.percentile(lat, 99) / 1e3
            print(f"{mode:4s} {'unpaced' if rate == 0 else f'{rate:,} msgs/s'}: achieved {achieved:,.0f} msgs/s over {DURATION_S} s, "
                  f"{sent:,} sent, {lost} lost, p99 {p99_ms:.1f} ms -> {'zero loss' if ok else 'LOSS'}"
                  f"{', backlog' if ok and p99_ms >= BACKLOG_MS else ''}")
            if not ok: break
            best = max(best, achieved)
            if p99_ms < BACKLOG_MS: kept_up = max(kept_up, achieved)
        print(f"{mode:4s} highest rate with zero loss: {best:,.0f} msgs/s; with zero loss and no backlog (p99 < {BACKLOG_MS} ms): {kept_up:,.0f} msgs/s")
