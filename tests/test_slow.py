"""End-to-end runs on the embedded MNIST (minutes; run with `make test-slow`)."""

from __future__ import annotations

import pytest

from wae.config import override, preset
from wae.train import fit


@pytest.mark.slow
def test_one_epoch_of_the_default_preset_learns_mnist(tmp_path):
    result = fit(override(preset("mnist-fast"), epochs=1), tmp_path / "run", progress=False)
    assert result.step == 600
    # measured on 2 cores: MSE about 0.026 per pixel and test MMD about 0.04 after one epoch
    assert result.metrics["test_recon_mse"] < 0.035
    assert result.metrics["test_mmd"] < 0.08


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    assert code is not None
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    assert namespace["samples"].shape == (16, 1, 28, 28) and namespace["codes"].shape == (4, 8)
