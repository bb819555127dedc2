"""diffrax's solves traced with the hundred `prevbefore` calls in one step
(`neurosim._clip_floor`): the same threshold bit for bit, the same simulations."""

import diffrax
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns
from neurosim import _clip_floor


def _chain(x):
    for _ in range(_clip_floor.CHAIN):
        x = eqxi.prevbefore(x)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_step_equals_the_chain_bit_for_bit(dtype, x64):
    info = np.finfo(dtype)
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.uniform(0.0, 1e3, 2000),
            -rng.uniform(0.0, 1e3, 200),
            10.0 ** rng.uniform(-30, 30, 500),
            -(10.0 ** rng.uniform(-30, 30, 500)),
            [0.0, -0.0, 1.0, -1.0, info.max, -info.max, np.inf, -np.inf, np.nan],
            [info.tiny * 2, -info.tiny, -info.tiny * 3, info.tiny / 4, -info.tiny / 4],
        ]
    ).astype(dtype)
    x = jnp.asarray(values)
    expected = np.asarray(jax.jit(_chain)(x))
    got = np.asarray(jax.jit(_clip_floor.below)(x))
    # Derivatives pass through, as the chain's do.
    slope = jax.grad(lambda t: _clip_floor.below(t) * 3.0)(jnp.asarray(5.0, dtype))
    bits = f"u{np.dtype(dtype).itemsize}"
    same = (expected.view(bits) == got.view(bits)) | (np.isnan(expected) & np.isnan(got))
    assert same.all(), values[~same]
    assert float(slope) == 3.0


def test_the_known_diffrax_is_recognised_and_restored():
    integrate = _clip_floor._known_diffrax()
    if diffrax.__version__ == "0.7.2":  # the version it was written against
        assert integrate is not None
    if integrate is None:
        pytest.skip(f"diffrax {diffrax.__version__}: solves are traced as it writes them")
    with _clip_floor.cheap_clip_floor():
        with _clip_floor.cheap_clip_floor():
            assert integrate.eqxi is _clip_floor._PROXY
        assert integrate.eqxi is _clip_floor._PROXY
    assert integrate.eqxi is eqxi


def test_simulations_are_the_same_with_the_chain_and_without(monkeypatch, x64):
    """The network path (`_engine`) and per-neuron clocks (`_clock`) of an
    Izhikevich network: the same spikes and states to the bit either way. The forms
    that gradients go through solve with `diffeqsolve` (forward runs take their own
    steps; `gradients=True` keeps the solves that would be differentiated)."""
    net, y0 = ns.networks.izhikevich_2003(
        seed=3, n_exc=32, n_inh=8, t1=30.0, noise_exc=12.0, noise_inh=8.0
    )

    def run(clocks):
        sol = ns.simulate(net, y0=y0, t1=30.0, clocks=clocks, gradients=True)
        v = jax.tree_util.tree_leaves(sol.final_state)
        return np.asarray(sol.spike_times), np.concatenate([np.ravel(x) for x in v])

    runs = []
    for known in (_clip_floor._INTEGRATE, None):
        monkeypatch.setattr(_clip_floor, "_INTEGRATE", known)
        jax.clear_caches()
        runs.append([run(clocks) for clocks in ("network", "neuron")])
    jax.clear_caches()
    for (times_a, v_a), (times_b, v_b) in zip(*runs):
        assert np.isfinite(times_a).sum() > 20
        np.testing.assert_array_equal(times_a, times_b)
        np.testing.assert_array_equal(v_a, v_b)
