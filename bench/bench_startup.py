"""Benchmark: start-up of the live loop on a warm install (numba's cache built, second run and later).

Measured: wall time from `Supervisor.run` being called to the first bar processed by the trading service (its stats'
`first_bar_ns`), with the five service processes starting together on this machine's cores; and the CPU every process
(the supervisor's own included) used up to that moment. The replay is the demo's: the S&P 500 from 2015-01-01, a GMM(2)
trained before it, RegimeExposure(1, 0). The phases each service reported (importing, loading the model, warming
kernels, waiting for its peers) are printed from their stats.

The obvious alternative, measured the same way in the same run: every process imports what a service needs at most
(the `arch` package, scikit-learn and scipy, every module of the package) before it does anything, as the loop did
when each module imported its dependencies at the top. It is made by a `sitecustomize` on the services' PYTHONPATH
that imports them; the supervisor's process imports them before the clock starts.

Run: .venv/bin/python bench/bench_startup.py [runs per variant, default 3]
"""
import os, shutil, sys, tempfile, threading, time
from pathlib import Path

EAGER = "import arch.data.sp500, sklearn.mixture, scipy.stats, regime_nb.regimes, regime_nb.registry, regime_nb.services, regime_nb.trading, regime_nb.broker\n"
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

def time_to_first_bar(run_dir, registry, timeout_s=120.0) -> dict:
    "Start the loop; once trading has processed its first bar, stop it: the wall time to that bar, each process's phases and the CPU it had used when ready."
    from regime_nb.supervisor import LiveConfig, Supervisor
    cfg = LiveConfig(run_dir=str(run_dir), store=str(run_dir/"store.sqlite"), registry=registry, data="sp500", start="2015-01-01", speed=250.0, risk=PERMISSIVE)
    sup = Supervisor(cfg, out=lambda _: None)
    th = threading.Thread(target=lambda: sup.run(timeout_s), daemon=True)
    t0, cpu0 = time.time_ns(), time.process_time(); th.start()
    while th.is_alive() and not sup.stats.get("trading", {}).get("first_bar_ns"): time.sleep(0.005)
    sup.stopping = True; th.join()
    t = sup.stats.get("trading", {}).get("first_bar_ns")
    if not t: raise RuntimeError(f"no bar reached the trading service within {timeout_s} s; logs in {run_dir}")
    phases, cpu = {}, {"supervisor": time.process_time() - cpu0}  # the supervisor runs in this process (a little after the first bar)
    for name, f in sup.phase_files.items():
        log = (f.read() or {}).get("log") or []
        marks = [("importing", sup.started[name] * 1e9)] + [(f"{p} {d}".strip(), ns) for p, d, ns, _ in log]
        phases[name] = {m: (marks[i + 1][1] - ns) / 1e9 for i, (m, ns) in enumerate(marks[:-1])}
        cpu[name] = log[-1][3] if log else float("nan")  # its CPU when it was ready (its interpreter's start-up not counted)
    return dict(wall_s=(t - t0) / 1e9, cpu_s=sum(cpu.values()), cpu=cpu, phases=phases)

def median(xs): xs = sorted(xs); return xs[len(xs) // 2]

if __name__ == "__main__":
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    load0 = os.getloadavg()[0]  # other work on the machine slows start-up as much as anything here
    d = Path(tempfile.mkdtemp())
    eager_dir = d/"eager"; eager_dir.mkdir(); (eager_dir/"sitecustomize.py").write_text(EAGER)
    path0 = os.environ.get("PYTHONPATH", "")
    registry = make_registry(d/"reg")
    time_to_first_bar(d/"warm", registry)  # builds numba's cache where it is missing: the runs below are a warm install's
    res = {"lazy": [], "eager": []}
    for i in range(runs):
        for variant in ("lazy", "eager"):  # interleaved: a busy machine slows both alike
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(eager_dir) if variant == "eager" else "", path0]))
            if variant == "eager": exec(EAGER)
            res[variant].append(time_to_first_bar(d/f"{variant}{i}", registry))
    os.environ["PYTHONPATH"] = path0
    print(f"live loop start-up, warm install, {os.cpu_count()} cores (load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after), 5 service processes; "
          f"Supervisor.run -> first bar processed by trading ({runs} runs each):")
    for variant, what in (("lazy", "as shipped (each service imports what it uses, when it uses it)"), ("eager", "alternative: every process imports arch, scikit-learn, scipy and the whole package first")):
        r = res[variant]
        print(f"  {what}: median {median([x['wall_s'] for x in r]):.2f} s wall (best {min(x['wall_s'] for x in r):.2f} s), "
              f"CPU of all processes when ready median {median([x['cpu_s'] for x in r]):.1f} s")
    best = min(res["lazy"], key=lambda x: x["wall_s"])
    print(f"  phases of the fastest run as shipped (wall s, each process from its start; CPU s when ready):")
    for svc, ph in best["phases"].items(): print(f"    {svc}: " + ", ".join(f"{k} {v:.2f}" for k, v in ph.items()) + f"; CPU {best['cpu'][svc]:.2f}")
    print(f"    supervisor: CPU {best['cpu']['supervisor']:.2f}")
    print(f"  ratio (alternative / as shipped, medians): {median([x['wall_s'] for x in res['eager']]) / median([x['wall_s'] for x in res['lazy']]):.1f}x wall, "
          f"{median([x['cpu_s'] for x in res['eager']]) / median([x['cpu_s'] for x in res['lazy']]):.1f}x CPU")
    shutil.rmtree(d, ignore_errors=True)
