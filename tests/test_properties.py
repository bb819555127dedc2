"""Properties that hold for every network, checked on random small ones (hypothesis).

Each example is a recurrent population of LIF neurons with per-neuron parameters,
random weights (excitatory and inhibitory), a constant drive and random input spikes.
The runs are traced (`_traced`): shapes are fixed, so every example reuses one compiled
run per path (an eager run builds delivery plans from the concrete weights and inputs,
and compiles anew for each).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import neurosim as ns

N = 5  # neurons
K = 8  # input spikes
T1 = 60.0
T_REF_MIN = 0.5  # ms, the shortest refractory period drawn below
# Room for every spike the refractory periods allow (an all-excitatory draw can fire
# near that rate): the buffer never fills.
MAX_SPIKES = N * (int(T1 / T_REF_MIN) + 1)
HOLD = 1e-3  # ms after a spike, within every refractory period drawn below

pytestmark = pytest.mark.usefixtures("float64")

SETTINGS = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _floats(low, high, shape):
    return arrays(np.float64, shape, elements=st.floats(low, high, width=64))


@st.composite
def networks(draw):
    """Parameters of a random network, as NumPy arrays (one value per neuron)."""
    mask = draw(arrays(np.bool_, (N, N), elements=st.booleans()))
    weights = draw(_floats(-0.4, 0.6, (N, N))) * mask * (1 - np.eye(N))
    return dict(
        tau_mem=draw(_floats(5.0, 20.0, (N,))),
        tau_syn=draw(_floats(2.0, 8.0, (N,))),
        v_reset=draw(_floats(-0.5, 0.5, (N,))),
        t_ref=draw(_floats(T_REF_MIN, 3.0, (N,))),
        current=draw(_floats(0.5, 2.5, (N,))),
        weights=weights,
        input_times=np.sort(draw(_floats(0.0, T1, (K,)))),
        input_sources=draw(arrays(np.int32, (K,), elements=st.integers(0, 2))),
        input_weights=draw(_floats(-0.5, 1.5, (3, N))),
    )


def _run(p, exact, record=None):
    neuron = ns.LIF(
        tau_mem=p["tau_mem"],
        tau_syn=p["tau_syn"],
        v_th=1.0,
        v_reset=p["v_reset"],
        t_ref=p["t_ref"],
    )
    return ns.simulate(
        neuron,
        n=N,
        t1=T1,
        current=jnp.asarray(p["current"]),
        weights=jnp.asarray(p["weights"]),
        input_spikes=(jnp.asarray(p["input_times"]), jnp.asarray(p["input_sources"])),
        input_weights=jnp.asarray(p["input_weights"]),
        record=record,
        record_fields=("v",),
        max_spikes=MAX_SPIKES,
        exact=exact,
    )


_traced = eqx.filter_jit(_run)


def _as_arrays(p):
    return jax.tree_util.tree_map(jnp.asarray, p)


def _trains(sol):
    times, neurons = sol.spikes()
    return [times[neurons == k] for k in range(N)]


def _check_spikes_and_resets(p, exact):
    sol = _traced(_as_arrays(p), exact)
    assert int(sol.status) == 1, sol.message
    times, neurons = sol.spikes()
    # Sorted, within [t0, t1], the buffer padded after them.
    assert np.all(np.diff(times) >= 0)
    assert np.all((times >= 0.0) & (times <= T1))
    assert np.all(np.isinf(np.asarray(sol.spike_times[len(times) :])))
    # Refractory spacing.
    for k, train in enumerate(_trains(sol)):
        assert np.all(np.diff(train) >= p["t_ref"][k] * (1 - 1e-12)), (k, train)
    # Just after each spike the neuron is at its reset (held while refractory).
    record = np.full((MAX_SPIKES,), T1)
    record[: len(times)] = np.minimum(times + HOLD, T1)  # sorted, as `times`
    later = _traced(_as_arrays(p), exact, record=jnp.asarray(record))
    # Records change no spike time: bit for bit.
    np.testing.assert_array_equal(later.spike_times, sol.spike_times)
    np.testing.assert_array_equal(later.spike_neurons, sol.spike_neurons)
    v_after = np.asarray(later.states["v"])
    for slot, (t, k) in enumerate(zip(times, neurons)):
        if t + HOLD < T1:
            assert v_after[slot, k] == pytest.approx(p["v_reset"][k], abs=1e-12)
    return sol


def _wave(tau_syn):
    """All-to-all excitation and eight input spikes at t = 0: waves of simultaneous
    spikes, more than a hundred in 60 ms (a draw that once filled a 96-spike buffer,
    and whose records once moved spike times by a few ulps)."""
    return dict(
        tau_mem=np.full(N, 5.0),
        tau_syn=np.asarray(tau_syn, float),
        v_reset=np.zeros(N),
        t_ref=np.ones(N),
        current=np.ones(N),
        weights=0.59375 * (1 - np.eye(N)),
        input_times=np.zeros(K),
        input_sources=np.zeros(K, np.int32),
        input_weights=np.ones((3, N)),
    )


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "ode"])
@SETTINGS
@given(p=networks())
@example(p=_wave([2.0, 2.0, 2.0, 3.0, 2.0]))
@example(p=_wave([3.0] * N))
def test_spikes_are_sorted_spaced_and_followed_by_the_reset(exact, p):
    _check_spikes_and_resets(p, exact)


@SETTINGS
@given(p=networks(), data=st.data())
def test_spike_counts_follow_a_permutation_of_the_neurons(p, data):
    perm = np.asarray(data.draw(st.permutations(range(N))))
    permuted = {
        key: (
            value[perm]
            if key in ("tau_mem", "tau_syn", "v_reset", "t_ref", "current")
            else value
        )
        for key, value in p.items()
    }
    permuted["weights"] = p["weights"][np.ix_(perm, perm)]
    permuted["input_weights"] = p["input_weights"][:, perm]
    before = _trains(_traced(_as_arrays(p), True))
    after = _trains(_traced(_as_arrays(permuted), True))
    for new, old in enumerate(perm):
        assert len(after[new]) == len(before[old])
        np.testing.assert_allclose(after[new], before[old], rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "exact", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["exact", "ode"]
)
@settings(SETTINGS, max_examples=2)
@given(p=networks())
def test_jit_and_eager_agree(exact, p):
    eager = _run(p, exact)
    traced = eqx.filter_jit(lambda q: _run(q, exact))(
        jax.tree_util.tree_map(jnp.asarray, p)
    )
    assert int(traced.status) == int(eager.status) == 1
    assert int(traced.num_spikes) == int(eager.num_spikes)
    np.testing.assert_array_equal(traced.spike_neurons, eager.spike_neurons)
    np.testing.assert_allclose(traced.spike_times, eager.spike_times, rtol=0, atol=1e-9)
