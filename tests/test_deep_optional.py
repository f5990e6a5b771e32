"""Without PyTorch (the `deep` extra not installed) the package and every other feature work, and asking for the Transformer says what to install.
Runs whether or not torch is installed: in a child process an import hook makes `import torch` fail."""
import subprocess, sys, textwrap

BLOCK_TORCH = """
import sys
class NoTorch:  # an import hook that refuses torch, installed before anything is imported: as on a machine without the extra
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."): raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
"""

def run_without_torch(code:str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)], capture_output=True, text=True, timeout=300)

def test_without_torch_the_package_fits_scores_and_chooses_models_and_the_transformer_names_the_extra():
    r = run_without_torch("""
        import numpy as np
        import regime_nb, regime_nb.deep, regime_nb.validation, regime_nb.services, regime_nb.cli
        from regime_nb.data import load_dataset
        from regime_nb.features import compute_features
        from regime_nb.regimes import GMMRegime
        from regime_nb.validation import candidate_models
        from regime_nb.deep import DeepDependencyError, TransformerRegime, deep_spec, has_torch
        X = compute_features(load_dataset("sp500")).loc["2010":"2012"]
        P = GMMRegime(2).fit(X).predict_proba(X)
        assert np.isfinite(P.to_numpy()[30:]).all()
        assert [c.family for c in candidate_models()] == ["gmm"] * 6 + ["hmm"] * 6 + ["kmeans"] * 2
        assert not has_torch()
        for f in (lambda: TransformerRegime().fit(X), lambda: candidate_models(["transformer"])):
            try: f(); raise SystemExit("no error without torch")
            except DeepDependencyError as e: print("ERROR:", e)
        print("ok", "torch" not in sys.modules)
    """)
    assert r.returncode == 0, r.stderr
    errors = [l for l in r.stdout.splitlines() if l.startswith("ERROR:")]
    assert len(errors) == 2 and all("pip install 'regime-nb[deep]'" in e for e in errors), r.stdout
    assert r.stdout.strip().endswith("ok True"), r.stdout
