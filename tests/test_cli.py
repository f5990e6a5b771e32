"The `regime-nb` console script, run as a user runs it: a real process, real files, exit codes."
import json, re
from pathlib import Path
import pandas as pd
from regime_nb.data import make_bad_bars
from regime_nb.simulate import simulate_ticks

ROOT = Path(__file__).resolve().parents[1]

def test_help_lists_commands(cli):
    r = cli("--help")
    assert r.returncode == 0 and "data" in r.stdout and "demo" in r.stdout

def test_data_list_and_show(cli):
    r = cli("data", "list")
    assert r.returncode == 0
    for name in ("sp500", "nasdaq", "wti", "vix"): assert name in r.stdout
    r = cli("data", "show", "sp500", "--rows", "2")
    assert r.returncode == 0 and "5031 bars" in r.stdout and "2018-12-31" in r.stdout

def test_unknown_dataset_is_a_clear_error(cli):
    r = cli("data", "show", "ftse")
    assert r.returncode == 2 and "no dataset 'ftse'; available: sp500, nasdaq, wti, vix" in r.stderr
    assert "Traceback" not in r.stderr

def test_validate_reports_repairs_and_never_touches_input(cli, tmp_path):
    f = tmp_path/"bad.csv"; make_bad_bars().to_csv(f)
    before = f.read_bytes()
    r = cli("data", "validate", f)
    assert r.returncode == 1, r.stdout + r.stderr
    for kind in ("nan", "inf", "nonpositive", "ohlc", "spike", "duplicate_ts", "out_of_order", "stale", "gap"): assert kind in r.stdout
    r = cli("data", "validate", f, "--mode", "drop", "--out", tmp_path/"dropped.parquet")
    assert r.returncode == 0 and "wrote 50 bars" in r.stdout
    assert len(pd.read_parquet(tmp_path/"dropped.parquet")) == 50
    r = cli("data", "validate", f, "--mode", "repair", "--out", tmp_path/"fixed.csv")
    assert r.returncode == 0 and "wrote 56 bars" in r.stdout
    assert cli("data", "validate", tmp_path/"fixed.csv").returncode == 0
    assert f.read_bytes() == before

def test_validate_user_file_with_column_mapping_and_timezone(cli, tmp_path):
    f = tmp_path/"ticks.csv"
    t = simulate_ticks(2000, seed=5)
    t.index = t.index.tz_convert("America/New_York").tz_localize(None)
    t.rename(columns={"price": "Last"}).reset_index().rename(columns={"ts": "Time"}).to_csv(f, index=False)
    r = cli("data", "validate", f, "--columns", "Last=close,Time=ts", "--source-tz", "America/New_York")
    assert r.returncode == 0, r.stdout + r.stderr

def test_validate_missing_file(cli, tmp_path):
    r = cli("data", "validate", tmp_path/"nope.csv")
    assert r.returncode == 2 and "no bars file at" in r.stderr

def test_settings_from_file_env_and_flags(cli, tmp_path):
    (tmp_path/"settings.ini").write_text("[data]\nspike_z = 3.5\n")
    f = tmp_path/"bad.csv"; make_bad_bars().to_csv(f)
    r = cli("data", "validate", f)  # spike_z from ./settings.ini: many more spikes flagged
    low = r.stdout.count("spike")
    r2 = cli("data", "validate", f, env={"REGIME_NB_DATA_SPIKE_Z": "10"})
    assert r2.stdout.count("spike") < low
    r3 = cli("--set", "data.spike_z=1", "data", "validate", f, env={"REGIME_NB_DATA_SPIKE_Z": "10"})
    assert r3.returncode == 2 and "[data] spike_z='1': expected a number >= 3.0" in r3.stderr
    r4 = cli("data", "list", env={"REGIME_NB_DATA_SPIKEZ": "10"})
    assert r4.returncode == 2 and "REGIME_NB_DATA_SPIKEZ is not a setting" in r4.stderr
    (tmp_path/"settings.ini").write_text("[data]\nspikez = 3\n")
    r5 = cli("data", "list")
    assert r5.returncode == 2 and "unknown key [data] spikez" in r5.stderr

def test_repo_settings_file_is_valid(cli):
    r = cli("--settings", ROOT/"settings.ini", "data", "list")
    assert r.returncode == 0, r.stderr

def test_demo_writes_plot_and_summary(cli, tmp_path):
    r = cli("demo", "--out", tmp_path/"demo")
    assert r.returncode == 0, r.stderr
    assert "5031 bars" in r.stdout and str(tmp_path/"demo") in r.stdout
    s = json.loads((tmp_path/"demo"/"summary.json").read_text())
    assert s["errors"] == 0 and Path(s["plot"]).stat().st_size > 10_000

def test_fit_registers_and_registry_commands_move_the_champion(cli, tmp_path):
    reg = tmp_path/"reg"
    r = cli("fit", "--data", "sp500", "--model", "gmm", "--max-k", "6", "--registry", reg, "--promote")
    assert r.returncode == 0, r.stderr
    assert "bic" in r.stdout and "chosen: K=" in r.stdout and "volatility_ann" in r.stdout
    r = cli("fit", "--data", "nasdaq", "--model", "hmm", "--max-k", "3", "--min-k", "2", "--registry", reg, "--alias", "challenger")
    assert r.returncode == 0, r.stderr
    r = cli("registry", "promote", "challenger", "--registry", reg, "--reason", "challenger passed the gates")
    assert r.returncode == 0 and "champion -> version 2 (was 1)" in r.stdout
    h = cli("registry", "history", "--registry", reg)
    assert "challenger passed the gates" in h.stdout
    assert "rolled back to version 1" in cli("registry", "rollback", "--registry", reg).stdout
    shown = json.loads(cli("registry", "show", "champion", "--registry", reg).stdout)
    assert shown["version"] == 1 and shown["fingerprint"]["symbol"] == "sp500" and shown["fingerprint"]["rows"] == 5031
    assert [f["kind"] for f in shown["feature_spec"]["features"]][:1] == ["log_return"]

def test_fit_rejects_bad_options(cli, tmp_path):
    r = cli("fit", "--data", "sp500", "--min-k", "3", "--max-k", "2", "--registry", tmp_path)
    assert r.returncode == 2 and "expected 1 <= min-k <= max-k" in r.stderr
    r = cli("fit", "--data", tmp_path/"none.csv", "--registry", tmp_path)
    assert r.returncode == 2 and "no bars file" in r.stderr

def test_walkforward_and_scan_write_report_folders(cli, tmp_path):
    r = cli("walkforward", "--data", "nasdaq", "--model", "kmeans", "--k", "2", "--exposures", "1,0", "--train", "756", "--test", "63",
            "--out", tmp_path/"wf", "--quiet")
    assert r.returncode == 0, r.stderr
    folds = pd.read_csv(tmp_path/"wf"/"folds.csv")
    assert len(folds) > 50 and (tmp_path/"wf"/"report.png").stat().st_size > 10_000
    m = json.loads((tmp_path/"wf"/"metrics.json").read_text())
    assert m["command"] == "walkforward" and m["benchmark"]["total_return"] is not None
    r = cli("scan", "--sources", "sp500,nasdaq", "--gate", "max_drawdown<=0.35", "--jobs", "2", "--out", tmp_path/"scan", "--quiet")
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(tmp_path/"scan"/"scan.csv")
    assert set(table.source) == {"sp500", "nasdaq"} and (table.passed == (table.max_drawdown <= 0.35)).all()

def test_sweep_over_exposures_on_a_file(cli, tmp_path):
    f = tmp_path/"bars.parquet"
    from regime_nb.simulate import simulate_regimes
    simulate_regimes(5000, freq="1D", seed=9, mean_duration=(60, 40, 20)).drop(columns="regime").to_parquet(f)
    r = cli("sweep", "--data", f, "--grid", "exposures=1.5|0.3,1|0,1|1", "--out", tmp_path/"sw", "--quiet", "--jobs", "2")
    assert r.returncode == 0, r.stderr
    assert len(pd.read_csv(tmp_path/"sw"/"sweep.csv")) == 3

def test_backtest_register_records_the_out_of_sample_figures_the_live_check_judges_by(cli, tmp_path):
    import numpy as np
    reg, out = tmp_path/"reg", tmp_path/"bt"
    r = cli("backtest", "--data", "nasdaq", "--model", "gmm", "--k", "2", "--strategy", "zscore", "--tick-size", "1", "--trail-ticks", "40",
            "--register", "--alias", "champion", "--registry", reg, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "registered version 1" in r.stdout and "promoted version 1 to champion" in r.stdout, r.stdout
    shown = json.loads(cli("registry", "show", "champion", "--registry", reg).stdout)
    m = shown["metrics"]
    eq = pd.read_csv(out/"equity.csv", index_col=0).equity.to_numpy()
    rets = np.diff(np.concatenate([[1.0], eq])) / np.concatenate([[1.0], eq[:-1]])  # per-bar returns of the out-of-sample equity (from 1.0)
    moved = rets[rets != 0]
    assert m["validation_bars"] == len(eq) and m["validation_periods_per_year"] == 252
    assert abs(m["validation_sharpe"] - rets.mean() / rets.std(ddof=1) * np.sqrt(252)) < 1e-9
    assert abs(m["validation_hit_rate"] - (moved > 0).mean()) < 1e-12
    assert "ZScoreRegimeSwitch" in m["validation_strategy"] and pd.Timestamp(shown["data_end"]) < pd.Timestamp(m["validation_start"])  # fitted before it was validated
    r = cli("backtest", "--data", "nasdaq", "--register", "--registry", reg, "--train-frac", "0.99999", "--quiet")
    assert r.returncode == 2 and "a backtest needs at least 2 bars" in r.stderr, (r.returncode, r.stderr[-300:])  # nothing to validate on
    assert json.loads(cli("registry", "show", "champion", "--registry", reg).stdout)["version"] == 1 and "registered" not in r.stdout  # and nothing registered
    r = cli("backtest", "--data", "nasdaq", "--alias", "champion", "--registry", reg, "--quiet")  # --register forgotten: said, not ignored
    assert r.returncode == 2 and "--alias need --register (without it nothing is registered)" in r.stderr, r.stderr[-300:]

def test_fit_with_no_options_registers_its_exposures_and_live_serves_them(cli, tmp_path):
    reg = tmp_path/"reg"
    r = cli("fit", "--data", "sp500", "--registry", reg, "--promote", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "by walk-forward value inside the last 1000 bars" in r.stdout and "one regime" in r.stdout  # the one-regime fits: BIC only
    shown = json.loads(cli("registry", "show", "champion", "--registry", reg).stdout)
    strat = shown["metrics"]["strategy"]
    assert strat["kind"] == "RegimeExposure" and len(strat["exposures"]) == shown["metrics"]["n_regimes"] and shown["rows"] == 1000
    r = cli("live", "--data", "sp500", "--start", "2018-07-01", "--registry", reg, "--run-dir", tmp_path/"run", "--duration", "120")
    assert r.returncode == 0, r.stderr
    assert f"strategy: {strat} (as registered with champion, version 1" in r.stdout
    m = re.search(r"parity with the backtest: (\d+) live trades vs (\d+), max \|equity difference\| (\S+)", r.stdout)
    assert m and m.group(1) == m.group(2) and float(m.group(3).rstrip(";")) == 0, r.stdout
