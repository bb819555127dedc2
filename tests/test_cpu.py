"""`fuse_cpu_loops()`: XLA compiles the exact event loop into one function (in a fresh
process, since the flags must precede JAX's start), with the same results."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from jax._src import xla_bridge

import neurosim as ns
from neurosim import _cpu


def _run(mode):
    script = Path(__file__).with_name("_fused_run.py")
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    result = subprocess.run(
        [sys.executable, str(script), mode], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_fused_loops_give_the_same_spikes_and_states():
    plain, fused = _run("plain"), _run("fused")
    assert not plain["fused"] and fused["fused"]
    assert plain["num_spikes"] == fused["num_spikes"] >= 500
    assert plain["neurons"] == fused["neurons"]
    assert plain["times"] == fused["times"]
    assert plain["v"] == fused["v"]
    assert plain["layer_spikes"] == fused["layer_spikes"] >= 50
    for key in ("layer_times", "layer_neurons", "layer_v"):
        assert plain[key] == fused[key]


def test_fuse_cpu_loops_refuses_once_jax_has_started():
    jnp.zeros(1).block_until_ready()
    with pytest.raises(RuntimeError, match="before the first JAX computation"):
        ns.fuse_cpu_loops()


def test_fuse_cpu_loops_sets_the_flags_and_keeps_the_users(monkeypatch):
    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    ns.fuse_cpu_loops()
    flags = os.environ["XLA_FLAGS"].split()
    assert flags[0] == "--xla_force_host_platform_device_count=2"
    assert all(flag in flags for flag in _cpu.FLAGS)
    ns.fuse_cpu_loops()  # a second call adds nothing
    assert os.environ["XLA_FLAGS"].split() == flags
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_extra_options=other=1")
    with pytest.raises(ValueError, match="xla_backend_extra_options"):
        ns.fuse_cpu_loops()


def test_fuse_cpu_loops_refuses_older_jax(monkeypatch):
    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: False)
    monkeypatch.setattr(jax, "__version_info__", (0, 9, 0))
    with pytest.raises(RuntimeError, match="needs jax >= 0.10"):
        ns.fuse_cpu_loops()
