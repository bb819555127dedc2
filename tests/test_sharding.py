"""A batch of simulations sharded over several devices with `jax.sharding` (four host
CPU devices, in a subprocess) equals the same simulations run one by one."""

import os
import subprocess
import sys
from pathlib import Path


def test_batch_sharded_over_four_devices_equals_separate_runs():
    script = Path(__file__).with_name("_sharded_run.py")
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["JAX_PLATFORMS"] = "cpu"  # the four devices are host CPUs, also beside a GPU
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sharded ok" in result.stdout
