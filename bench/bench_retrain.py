"""The retrain job's wall time on the S&P 500 with its default candidates, through papermill (`run_job`, as `regime-nb retrain` runs it),
against the same cells executed in this process: papermill's overhead is the kernel start, the notebook I/O and the HTML export.

Both sides run dry (nothing registered) on a scratch registry and store, first call in the process and then best of N warm runs.
Run: `.venv/bin/python bench/bench_retrain.py [N]` (default N=2)."""
import sys, tempfile, time
from pathlib import Path
import nbformat
sys.path.insert(0, str(Path(__file__).parent))
from timing import best_time
from regime_nb.jobs import job_path, run_job

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2
tmp = Path(tempfile.mkdtemp())
params = dict(registry=str(tmp/"registry"), store=str(tmp/"store.sqlite"))

def through_papermill():
    return run_job("retrain", params, dry_run=True, store=tmp/"store.sqlite", runs_dir=tmp/"runs", progress=False)

cells = [c.source for c in nbformat.read(str(job_path("retrain")), as_version=4).cells if c.cell_type == "code"]
def direct():
    "The notebook's code, cell by cell, in a fresh namespace of this process: its parameters cell, then the values papermill would inject."
    ns = {}
    exec(cells[0], ns)
    ns.update(params, dry_run=True, run_id="bench")
    for src in cells[1:]: exec(compile("\n".join(l for l in src.splitlines() if not l.startswith("%")), "<retrain>", "exec"), ns)
    return ns["reason"]

t0 = time.perf_counter(); direct(); direct_first = time.perf_counter() - t0
t0 = time.perf_counter(); through_papermill(); pm_first = time.perf_counter() - t0
pm_warm, run = best_time(through_papermill, N)
direct_warm, reason = best_time(direct, N)
print(f"retrain job on sp500 (default candidates: {run.outcome['challenger']} chosen; {reason})")
print(f"{'':24}{'first call':>12}{'warm best of ' + str(N):>18}")
print(f"{'papermill (run_job)':24}{pm_first:>11.1f}s{pm_warm:>17.1f}s")
print(f"{'same cells in-process':24}{direct_first:>11.1f}s{direct_warm:>17.1f}s")
print(f"papermill overhead: {pm_first - direct_first:+.1f} s first call ({pm_first / direct_first:.2f}x), {pm_warm - direct_warm:+.1f} s warm ({pm_warm / direct_warm:.2f}x)")
