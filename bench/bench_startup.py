"""Benchmark: start-up of the live loop on a warm install (numba's cache built, second run and later).

Measured: wall time from the supervisor being made (`Supervisor(cfg)`: the models checked, the fork server started) to
the first bar processed by the trading service (its stats' `first_bar_ns`), with the five service processes starting
together on this machine's cores; and the CPU every process used up to that moment (the supervisor's own, the fork
server's, and each service's when it was ready). Every run is a fresh Python process, as `regime-nb live` is, so no run
finds a server another one started. The replay is the demo's: the S&P 500 from 2015-01-01, a GMM(2) trained before it,
RegimeExposure(1, 0). The phases each service reported (loading the model, warming kernels, waiting for its peers) are
printed from their stats.

As shipped (`LiveConfig.start_method="forkserver"`): one server process imports what the services need once, and every
service forks from it. The obvious alternative, measured the same way in the same run (`start_method="spawn"`): every
service starts its own interpreter and imports what it needs itself.

Run: .venv/bin/python bench/bench_startup.py [runs per variant, default 3]
"""
import json, os, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

PERMISSIVE = dict(var_limit=None, max_position=2.0, stale_after_s=60.0, max_orders_per_min=100_000)

def cpu_s(pid) -> float:
    "User + system CPU seconds a process has used (Linux /proc)."
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def make_registry(d):
    "A GMM(2) trained on the S&P 500 before 2015, promoted to champion (the demo's live model)."
    from regime_nb.data import load_dataset
    from regime_nb.features import FeatureSpec, compute_features
    from regime_nb.regimes import GMMRegime
    from regime_nb.registry import Registry
    sp = load_dataset("sp500")
    m = GMMRegime(2).fit(compute_features(sp).loc[:"2014"])
    with Registry(d) as reg: reg.promote(reg.register(m, spec=FeatureSpec.default(), data=sp.loc[:"2014"], symbol="sp500"), "champion", reason="bench")
    return str(d)

def time_to_first_bar(run_dir, registry, start_method="forkserver", timeout_s=120.0) -> dict:
    "Make and start the loop; once trading has processed its first bar, stop it: the wall time to that bar, each process's phases and the CPU it had used when ready."
    from regime_nb.supervisor import LiveConfig, Supervisor
    from multiprocessing import forkserver
    cfg = LiveConfig(run_dir=str(run_dir), store=str(run_dir/"store.sqlite"), registry=registry, data="sp500", start="2015-01-01", speed=250.0,
                     risk=PERMISSIVE, start_method=start_method)
    t0, cpu0 = time.time_ns(), time.process_time()
    sup = Supervisor(cfg, out=lambda _: None)
    th = threading.Thread(target=lambda: sup.run(timeout_s), daemon=True); th.start()
    while th.is_alive() and not sup.stats.get("trading", {}).get("first_bar_ns"): time.sleep(0.005)
    server = forkserver._forkserver._forkserver_pid
    cpu = {"supervisor": time.process_time() - cpu0, **({"fork server": cpu_s(server)} if server else {})}
    sup.stopping = True; th.join()
    t = sup.stats.get("trading", {}).get("first_bar_ns")
    if not t: raise RuntimeError(f"no bar reached the trading service within {timeout_s} s; logs in {run_dir}")
    phases = {}
    for name, f in sup.phase_files.items():
        log = (f.read() or {}).get("log") or []
        marks = [("importing" if start_method == "spawn" else "forking", sup.started[name] * 1e9)] + [(f"{p} {d}".strip(), ns) for p, d, ns, _ in log]
        phases[name] = {m: (marks[i + 1][1] - ns) / 1e9 for i, (m, ns) in enumerate(marks[:-1])}
        cpu[name] = log[-1][3] if log else float("nan")  # its CPU when it was ready (a spawned interpreter's own start-up not counted)
    return dict(wall_s=(t - t0) / 1e9, cpu_s=sum(cpu.values()), cpu=cpu, phases=phases)

def fresh_run(run_dir, registry, start_method) -> dict:
    "`time_to_first_bar` in a new Python process, as `regime-nb live` starts."
    out = subprocess.run([sys.executable, __file__, "--one", start_method, str(run_dir), registry], capture_output=True, text=True, timeout=300)
    if out.returncode: raise RuntimeError(f"the {start_method} run failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])

def median(xs): xs = sorted(xs); return xs[len(xs) // 2]

if __name__ == "__main__" and sys.argv[1:2] == ["--one"]:
    print(json.dumps(time_to_first_bar(Path(sys.argv[3]), sys.argv[4], sys.argv[2])))
elif __name__ == "__main__":
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    load0 = os.getloadavg()[0]  # other work on the machine slows start-up as much as anything here
    d = Path(tempfile.mkdtemp())
    registry = make_registry(d/"reg")
    fresh_run(d/"warm", registry, "spawn")  # builds numba's cache where it is missing: the runs below are a warm install's
    res = {"forkserver": [], "spawn": []}
    for i in range(runs):
        for variant in res: res[variant].append(fresh_run(d/f"{variant}{i}", registry, variant))  # interleaved: a busy machine slows both alike
    print(f"live loop start-up, warm install, {os.cpu_count()} cores (load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after), 5 service processes; "
          f"Supervisor(cfg) -> first bar processed by trading, each run a fresh process ({runs} runs each):")
    for variant, what in (("forkserver", "as shipped (services fork from one server that imported what they need)"), ("spawn", "alternative: every service starts its own interpreter")):
        r = res[variant]
        print(f"  {what}: median {median([x['wall_s'] for x in r]):.2f} s wall (best {min(x['wall_s'] for x in r):.2f} s), "
              f"CPU of all processes when ready median {median([x['cpu_s'] for x in r]):.1f} s")
    for variant in res:
        best = min(res[variant], key=lambda x: x["wall_s"])
        print(f"  phases of the fastest {variant} run (wall s, each process from its start; CPU s when ready):")
        for svc, ph in best["phases"].items(): print(f"    {svc}: " + ", ".join(f"{k} {v:.2f}" for k, v in ph.items()) + f"; CPU {best['cpu'][svc]:.2f}")
        print("    " + ", ".join(f"{k}: CPU {best['cpu'][k]:.2f}" for k in ("supervisor", "fork server") if k in best["cpu"]))
    print(f"  ratio (alternative / as shipped, medians): {median([x['wall_s'] for x in res['spawn']]) / median([x['wall_s'] for x in res['forkserver']]):.1f}x wall, "
          f"{median([x['cpu_s'] for x in res['spawn']]) / median([x['cpu_s'] for x in res['forkserver']]):.1f}x CPU")
    shutil.rmtree(d, ignore_errors=True)
