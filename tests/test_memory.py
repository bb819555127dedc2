"""A network of a million connection entries or more hands the allocator's free pages
back to the system once it is built (`neurosim._memory`); smaller ones do not call it.
(The effect on the peak memory is measured by benchmarks/cuba_scaling.py.)"""

import platform
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns
from neurosim import _memory, _network


def _network_of(n, fan_out):
    pre = np.repeat(np.arange(n), fan_out)
    post = (pre + 1 + np.tile(np.arange(fan_out), n)) % n
    projection = ns.Projection("a", "a", (pre, post, np.full(pre.shape, 0.1)))
    return ns.Network({"a": ns.Population(ns.LIF(), n)}, [projection])


def test_large_networks_release_free_memory_once_built(monkeypatch):
    calls = []
    monkeypatch.setattr(_network, "release_free_memory", lambda: calls.append(1))
    _network_of(1024, 1016)  # 1 040 384 entries: below 2**20
    assert calls == []
    net = _network_of(1024, 1024)  # 2**20 entries (every pair)
    assert calls == [1]
    assert net.connections[0].post_index.shape == (1024, 1024)
    # Dense rows (no `post_index`) count their weights' entries.
    dense = ns.Projection("a", "a", np.full((1024, 1024), 0.1))
    net = ns.Network({"a": ns.Population(ns.LIF(), 1024)}, [dense])
    assert net.connections[0].post_index is None and calls == [1, 1]
    small = ns.Projection("a", "a", np.full((4, 4), 0.1))
    ns.Network({"a": ns.Population(ns.LIF(), 4)}, [small])
    assert calls == [1, 1]


def test_release_is_available_with_glibc():
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    assert _memory.release_free_memory() is True


def test_long_compilations_hand_free_memory_back(monkeypatch):
    """`simulate` registers the listener (once per process); it trims after a backend
    compilation of `COMPILE_SECONDS` or more only."""
    if _memory._malloc_trim() is None:
        pytest.skip("malloc_trim is glibc's")
    ns.simulate(ns.LIF(tau_mem=10.0, v_th=1.0), n=1, t1=10.0, current=1.5)
    x = jnp.ones(5)
    calls = []
    monkeypatch.setattr(_memory, "release_free_memory", lambda: calls.append(1))
    monkeypatch.setattr(_memory, "COMPILE_SECONDS", 0.0)
    jax.jit(lambda x: x * 3.0 + 1.0)(x)  # a new function: one compilation
    assert calls == [1]
    monkeypatch.setattr(_memory, "COMPILE_SECONDS", float("inf"))
    jax.jit(lambda x: x * 3.0 - 1.0)(x)
    assert calls == [1]
