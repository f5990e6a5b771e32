"The model registry across real processes: concurrent registration, SIGKILL mid-write, concurrent promotion."
import json, os, random, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from regime_nb.registry import Registry
from regime_nb.store import Store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL and POSIX file semantics")

# Each worker waits at a file barrier so that all of them hit the registry at the same moment.
PRELUDE = """
import json, sys, time
from pathlib import Path
import numpy as np
from regime_nb.registry import Registry
root, wid, n = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
reg = Registry(root)
(root/f"ready-{wid}").touch()
while not (root/"go").exists(): time.sleep(0.005)
"""

REGISTER = PRELUDE + """
out = []
for i in range(n):
    model = {"worker": wid, "i": i, "weights": np.random.default_rng(1000 * wid + i).normal(size=1000)}
    out.append(reg.register(model, spec={"worker": wid}, metrics={"worker": wid, "i": i}, tags=[f"w{wid}"]))
print(json.dumps(out))
"""

REGISTER_FOREVER = PRELUDE + """
payload = np.random.default_rng(wid).normal(size=100_000)  # ~800 kB: the write and fsync take a while
i = 0
while True:
    v = reg.register({"i": i, "payload": payload}, metrics={"i": i})
    print(v, flush=True); i += 1
"""

PROMOTE = PRELUDE + """
from regime_nb.registry import RegistryError
mine = json.loads(sys.argv[4])
for i in range(n):
    reg.promote(mine[i % len(mine)], reason=f"worker {wid} step {i}")
    if wid == 1 and i % 5 == 4:
        try: reg.rollback(reason=f"worker {wid} step {i}")
        except RegistryError: pass
print("done")
"""

def _start(code, root, wid, n, *extra):
    return subprocess.Popen([sys.executable, "-c", code, str(root), str(wid), str(n), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

def _go(root, procs, timeout=60):
    "Wait until every worker is ready, then release them together."
    t0 = time.monotonic()
    while not all((root/f"ready-{w}").exists() for w in range(len(procs))):
        for p in procs:
            if p.poll() is not None: raise AssertionError(f"worker died early: {p.stderr.read()}")
        assert time.monotonic() - t0 < timeout, "workers did not start"
        time.sleep(0.01)
    (root/"go").touch()

def _finish(procs, timeout=60):
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err
        outs.append(out)
    return outs

def _assert_every_version_verifies(reg):
    vs = list(reg.list().index)
    assert vs == list(range(1, len(vs) + 1)), f"versions are not contiguous: {vs}"
    report = reg.verify_all()
    assert report.ok.all(), report[~report.ok].error.tolist()
    for v in vs: reg.load(v)
    assert reg.store.integrity_check()
    return vs

def test_concurrent_registration(tmp_path):
    n_workers, n = 4, 20
    Registry(tmp_path).close()  # create the schema first, as a deployment would
    procs = [_start(REGISTER, tmp_path, w, n) for w in range(n_workers)]
    _go(tmp_path, procs)
    got = [json.loads(o) for o in _finish(procs)]
    allv = sorted(v for vs in got for v in vs)
    assert allv == list(range(1, n_workers * n + 1))
    with Registry(tmp_path) as reg:
        _assert_every_version_verifies(reg)
        for w, vs in enumerate(got):
            assert vs == sorted(vs)
            for i, v in enumerate(vs):
                meta = reg.show(v)
                assert meta["metrics"] == {"worker": w, "i": i} and meta["tags"] == [f"w{w}"]
                m = reg.load(v)  # each version holds its own model
                assert (m["worker"], m["i"]) == (w, i) and m["weights"][0] == np.random.default_rng(1000 * w + i).normal(size=1000)[0]
        assert sorted(p.name for p in reg.artifacts.iterdir()) == [f"v{v:06d}.joblib" for v in allv]

def test_concurrent_workers_create_a_fresh_store(tmp_path):
    "Several processes opening a database that does not exist yet all succeed, and migrate it once."
    code = "import sys; from regime_nb.store import Store; s = Store(sys.argv[1]); print(s.schema_version)"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path/"m.sqlite")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    outs = _finish(procs)
    with Store(tmp_path/"m.sqlite") as s:
        assert {o.strip() for o in outs} == {str(s.schema_version)}
        assert s.query_one("SELECT COUNT(*) FROM schema_version")[0] == s.schema_version

def test_sigkill_mid_registration_leaves_no_half_version(tmp_path):
    rnd = random.Random(7)
    Registry(tmp_path).close()
    for k in range(6):
        for f in tmp_path.glob("ready-*"): f.unlink()
        (tmp_path/"go").unlink(missing_ok=True)
        p = _start(REGISTER_FOREVER, tmp_path, 0, 0)
        _go(tmp_path, [p])
        assert p.stdout.readline().strip().isdigit()  # it is registering
        time.sleep(rnd.uniform(0.0, 0.15))
        os.kill(p.pid, signal.SIGKILL); p.wait(timeout=10)
    with Registry(tmp_path) as reg:
        vs = _assert_every_version_verifies(reg)
        assert len(vs) >= 6
        reg.clean(older_than_s=0)  # whatever the kills left behind
        assert sorted(p.name for p in reg.artifacts.iterdir()) == [f"v{v:06d}.joblib" for v in vs]
        _assert_every_version_verifies(reg)
        assert reg.load("latest")["i"] == reg.show("latest")["metrics"]["i"]

def test_concurrent_promotion_keeps_history_consistent(tmp_path):
    with Registry(tmp_path) as reg:
        for i in range(4): reg.register({"model": i})
    n = 30
    procs = [_start(PROMOTE, tmp_path, 0, n, "[1, 2]"), _start(PROMOTE, tmp_path, 1, n, "[3, 4]")]
    _go(tmp_path, procs)
    _finish(procs)
    with Registry(tmp_path) as reg:
        h = reg.history("champion")
        assert len(h) >= n  # no-op promotions (already champion) leave no row
        assert h.previous_version.isna().iloc[0] and h.previous_version.notna().iloc[1:].all()
        assert (h.previous_version.iloc[1:].to_numpy() == h.version.iloc[:-1].to_numpy()).all()
        assert (h.version != h.previous_version).iloc[1:].all()
        champion = reg.resolve("champion")
        assert champion == h.version.iloc[-1] and champion in {1, 2, 3, 4}
        assert reg.load("champion") == {"model": champion - 1}
        assert set(h.kind) == {"promote", "rollback"}
        assert reg.store.integrity_check()
