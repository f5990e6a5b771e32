"Job notebooks as a user runs them: papermill in real processes, the real store, the scheduler, the lock across processes."
import json, os, subprocess, sys, time
from pathlib import Path
import nbformat, pytest
from regime_nb.jobs import JOBS_DIR, job_parameters, read_outcome, runs
from regime_nb.store import Store

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

@pytest.mark.parametrize("job", sorted(p.stem for p in JOBS_DIR.glob("*.ipynb")))
def test_papermill_help_lists_every_parameter_with_its_type_and_help(job):
    r = subprocess.run([str(BIN/"papermill"), "--help-notebook", str(JOBS_DIR/f"{job}.ipynb")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    declared = job_parameters(job)
    assert declared and "run_id" in declared
    flat = " ".join(r.stdout.split())  # papermill wraps long help onto more lines
    for p in declared.values():
        assert p.help, f"{job}: parameter {p.name} has no help"
        entry = flat.split(f" {p.name}: ", 1)[1]
        assert entry.replace(" ", "").startswith(p.type) and " ".join(p.help.split()[:5]) in entry[:200], (p, entry[:200])

@pytest.mark.parametrize("job", sorted(p.stem for p in JOBS_DIR.glob("*.ipynb")))
def test_the_parameters_tag_survives_nbdev_clean(tmp_path, job):
    nb = tmp_path/f"{job}.ipynb"; nb.write_bytes((JOBS_DIR/f"{job}.ipynb").read_bytes())
    r = subprocess.run([str(BIN/"nbdev-clean"), "--fname", str(nb)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    tagged = [c for c in nbformat.read(str(nb), as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"

def test_a_bad_parameter_is_refused_before_any_work(cli, tmp_path):
    for args, msg in ((("-p", "costs_bps", "-1"), "parameter costs_bps=-1.0: expected a number >= 0 and <= 1000"),
                      (("-p", "cost_bps", "5"), "backtest_report.ipynb has no parameter 'cost_bps'; its parameters: data, model"),
                      (("-p", "execution", "tomorrow"), "parameter execution='tomorrow': expected one of next_close, next_open"),
                      (("-p", "exposures", "1,lots"), "parameter exposures='lots': expected a number")):
        r = cli("report", "backtest", *args)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)
    assert not (tmp_path/"output"/"runs").exists()  # nothing ran
    with Store(tmp_path/"output"/"regime_nb.sqlite") as st: assert len(runs(st)) == 0  # and nothing was recorded

def test_a_failing_cell_exits_non_zero_names_the_cell_and_keeps_the_notebook(cli, tmp_path):
    r = cli("report", "backtest", "-p", "exposures", "1,0,0", "--quiet")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "failed in cell" in r.stderr and "ValueError: exposures=[1.0, 0.0, 0.0]: 3 values for a model of 2 regimes" in r.stderr, r.stderr
    with Store(tmp_path/"output"/"regime_nb.sqlite") as st: (rec,) = runs(st).to_dict("records")
    assert rec["status"] == "failed" and not rec["promoted"]
    nb = nbformat.read(rec["notebook"], as_version=4)
    assert any(o.get("ename") == "ValueError" for c in nb.cells for o in c.get("outputs", []))
    r = cli("runs", "show", rec["id"][:12])
    shown = json.loads(r.stdout)
    assert shown["failed_cell"].startswith("cell ") and "3 values for a model of 2 regimes" in shown["error"]

SCHEDULER = """
import sys, time
from regime_nb.core import load_settings
from regime_nb.jobs import make_scheduler
sched = make_scheduler(load_settings(sys.argv[1]), blocking=False)
sched.start(paused=True)
job = sched.get_job("backtest_report")
job.modify(next_run_time=None); time.sleep(float(sys.argv[2]) - time.time())  # both schedulers fire at the same moment
job.func(*job.args, **job.kwargs)
"""

def test_two_schedulers_never_run_one_job_twice_at_once(tmp_path):
    (tmp_path/"settings.ini").write_text("[schedule]\nbacktest_report = 0 6 * * 1-5\n")
    at = time.time() + 8
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIME_NB_")}
    procs = [subprocess.Popen([sys.executable, "-c", SCHEDULER, str(tmp_path/"settings.ini"), str(at)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    with Store(tmp_path/"output"/"regime_nb.sqlite") as st: rs = runs(st)
    assert sorted(rs.status) == ["skipped", "succeeded"] and set(rs.trigger) == {"schedule"}, rs
    assert "already running" in rs[rs.status == "skipped"].reason.iloc[0]
    nb = Path(rs[rs.status == "succeeded"].notebook.iloc[0]); html = nb.with_suffix(".html")  # the report that ran, on the real S&P 500
    assert nb.is_file() and html.is_file() and nb.parent == tmp_path/"output"/"runs"/"backtest_report"
    o = read_outcome(nb)
    assert o["data"] == "sp500" and o["start"].startswith("2010-01-04") and o["strategy"]["n_bars"] > 2000
    assert "<img" in html.read_text()  # with its plots

def test_report_backtest_prints_the_paths_of_its_notebook_and_html(cli, tmp_path):
    r = cli("report", "backtest", "-p", "data", "nasdaq", "-p", "start", "2016-01-01", "--quiet")
    assert r.returncode == 0, r.stderr
    nb = Path(r.stdout.split("executed notebook: ")[1].split()[0])
    assert nb.is_file() and Path(r.stdout.split("(HTML: ")[1].split(")")[0]) == nb.with_suffix(".html") and read_outcome(nb)["data"] == "nasdaq"

def _champion(reg_path):
    from regime_nb.registry import Registry
    from regime_nb.core import RegimeNbError
    with Registry(reg_path) as reg:
        try: return reg.resolve("champion")
        except RegimeNbError: return None

def test_retrain_promotes_exactly_when_every_gate_passes_and_a_failure_changes_nothing(cli, tmp_path):
    "Three runs of `regime-nb retrain` on the real S&P 500: gates that pass promote, gates that fail do not, a failing cell exits 1; each on record."
    reg = tmp_path/"output"/"registry"
    r = cli("retrain", "-p", "min_sharpe", "-5", "-p", "min_monthly_return", "-1", "--quiet")  # the defaults' candidates, gates a first model can pass
    assert r.returncode == 0, r.stderr
    nb = Path(r.stdout.split("executed notebook: ")[1].split()[0]); o = read_outcome(nb)
    assert o["gates_passed"] and o["promoted"] and "promoted to champion" in r.stdout, (r.stdout, [g["reason"] for g in o["gates"] if not g["passed"]])
    first = _champion(reg); assert first == o["version"]
    from regime_nb.registry import Registry
    with Registry(reg) as rg: meta = rg.show(first)
    assert meta["metrics"]["run_notebook"] == str(nb) and meta["metrics"]["run_id"] in nb.name and meta["metrics"]["gates_passed"] and meta["metrics"]["strategy"]["kind"] == "RegimeExposure" and meta["fingerprint"]
    r = cli("retrain", "-p", "families", "gmm", "-p", "max_k", "2", "-p", "min_sharpe_gain", "5", "--quiet")  # must beat the champion's Sharpe by 5
    assert r.returncode == 0, r.stderr
    o = read_outcome(Path(r.stdout.split("executed notebook: ")[1].split()[0]))
    failed = [g for g in o["gates"] if not g["passed"]]
    assert not o["promoted"] and not o["gates_passed"] and any(g["metric"] == "sharpe (absolute gain)" for g in failed), o
    assert "not promoted" in r.stdout and _champion(reg) == first
    r = cli("retrain", "-p", "data", str(tmp_path/"missing.csv"), "--quiet")  # a cell fails: nothing changes
    assert r.returncode == 1 and "failed in cell" in r.stderr, r.stderr
    assert _champion(reg) == first
    with Store(tmp_path/"output"/"regime_nb.sqlite") as st: rs = runs(st, job="retrain")
    assert rs.status.tolist() == ["failed", "succeeded", "succeeded"] and rs.promoted.tolist() == [0, 0, 1], rs

def test_retrain_refuses_a_bad_parameter_before_any_work(cli, tmp_path):
    r = cli("retrain", "-p", "max_k", "20")
    assert r.returncode == 2 and "parameter max_k=20: expected a number >= 2 and <= 8" in r.stderr, r.stderr
    r = cli("retrain", "-p", "families", "gmm,lstm")
    assert r.returncode == 2 and "families='lstm': expected one of gmm, hmm, kmeans" in r.stderr, r.stderr
    assert not (tmp_path/"output"/"runs").exists()
