"Data at scale and across processes: the simulator's size, speed-independent memory, real datasets."
import json, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from regime_nb.data import DATASETS, find_issues, load_dataset, resample_bars, simulate_regimes, simulate_ticks, stationary_distribution

def _peak_rss_mb(n):
    "Peak resident memory growth (MB) of simulating `n` bars in a fresh process, after warm-up, and the frame's size."
    code = f"""
import json, re
from pathlib import Path
from regime_nb.data import simulate_regimes
simulate_regimes(1000)  # load the compiled kernel, import pandas
def kb(field): return int(re.search(field + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
base = kb("VmRSS")
df = simulate_regimes({n})
print(json.dumps([base / 1024, kb("VmHWM") / 1024, int(df.memory_usage(index=True).sum())]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)

@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak RSS")
def test_simulator_memory_is_proportional_to_output():
    b1, p1, out1 = _peak_rss_mb(1_000_000)
    b4, p4, out4 = _peak_rss_mb(4_000_000)
    grow1, grow4 = p1 - b1, p4 - b4
    # the frame itself is 57 bytes a bar; the peak may hold the kernel's arrays and the frame once each
    assert grow4 * 1024**2 / 4_000_000 < 3 * out4 / 4_000_000, (grow4, out4)
    assert 3.0 < grow4 / grow1 < 5.0, (grow1, grow4)

def test_simulated_regimes_match_their_parameters():
    df = simulate_regimes(1_000_000, seed=7)
    p = df.attrs["regime_params"]
    share = df.regime.value_counts(normalize=True).sort_index().to_numpy()
    np.testing.assert_allclose(share, stationary_distribution(np.array(p["transmat"])), atol=0.03)
    r = np.log(df.close).diff()
    np.testing.assert_allclose(r.groupby(df.regime).std().to_numpy(), p["sigma"], rtol=0.03)
    runs = (df.regime != df.regime.shift()).cumsum()
    durations = df.groupby(runs).regime.agg(["first", "size"]).groupby("first")["size"].mean()
    np.testing.assert_allclose(durations.to_numpy(), [600, 400, 150], rtol=0.1)
    o, h, l, c = (df[k].to_numpy() for k in ("open", "high", "low", "close"))
    assert (h >= np.maximum(o, c)).all() and (l <= np.minimum(o, c)).all()

def test_daily_simulation_has_business_like_frequency():
    df = simulate_regimes(2000, freq="1D", seed=3, mean_duration=(60, 40, 15))
    assert df.index.freqstr == "D" and df.close.gt(0).all()
    assert not (find_issues(df).severity == "error").any()

def test_ticks_resample_to_valid_bars():
    t = simulate_ticks(300_000, seed=11)
    b = resample_bars(t, "1min")
    assert b.volume.sum() == t["size"].sum()
    assert not (find_issues(b).severity == "error").any()

@pytest.mark.parametrize("name", list(DATASETS))
def test_real_datasets_have_no_errors(name):
    df = load_dataset(name)
    assert df.index.is_monotonic_increasing and not df.index.has_duplicates
    iss = find_issues(df)
    assert not (iss.severity == "error").any(), iss[iss.severity == "error"]
