"""benchmarks/gpu_check.py --cpu: the GPU check script's own checks pass on CPU."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_passes_on_cpu():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(SCRIPT), "--cpu"], capture_output=True, text=True, timeout=1200,
                          env=env)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:]
    for label in ("(a) LinguAlchemy fp32", "(a) plain fp32", "(b) resumed", "(c) 4 trials packed", "(d) per training step"):
        assert label in out, out
    assert "EQUAL" in out and "4/4 completed" in out and "imports: none of ray" in out
    assert "gpu_check: PASS" in out
