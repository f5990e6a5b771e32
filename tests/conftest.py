import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

@pytest.fixture
def cli(tmp_path):
    "Run the installed `regime-nb` console script in a clean working folder; return the CompletedProcess."
    def run(*args, env=None, cwd=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("REGIME_NB_")}
        e.update(env or {})
        return subprocess.run([str(BIN/"regime-nb"), *map(str, args)], capture_output=True, text=True,
                              env=e, cwd=cwd or tmp_path, timeout=600)
    return run
