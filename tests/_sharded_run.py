"""Run by tests/test_sharding.py in a fresh process (also `neurosim.batch_map` over
the mesh): XLA must see 4 host devices before JAX starts, so this cannot run inside the
test process itself."""

import os

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

import neurosim as ns  # noqa: E402


def trial(key, tau_mem):
    """A 20-neuron LIF layer driven by Poisson spikes: one trial of a sweep."""
    times, sources = ns.inputs.poisson_spikes(
        key, 50.0, num_sources=10, t1=100.0, max_per_source=20
    )
    weights = 1.2 * jax.random.uniform(jax.random.fold_in(key, 1), (10, 20))
    sol = ns.simulate(
        ns.LIF(tau_mem=tau_mem),
        n=20,
        t1=100.0,
        input_spikes=(times, sources),
        input_weights=weights,
        max_spikes=512,
    )
    return sol.spike_times, sol.num_spikes


def main():
    devices = jax.devices()
    assert len(devices) == 4, devices
    mesh = Mesh(np.array(devices), ("batch",))
    batch = NamedSharding(mesh, PartitionSpec("batch"))
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    taus = jnp.linspace(5.0, 20.0, 8)
    keys_s, taus_s = jax.device_put(keys, batch), jax.device_put(taus, batch)
    # Each trial alone (one compiled function), the reference of both batched forms.
    single = jax.jit(trial)
    alone = [single(keys[k], taus[k]) for k in range(8)]
    times, counts = jax.jit(jax.vmap(trial))(keys_s, taus_s)
    # The batch stays split over the four devices, two trials each.
    assert len(times.sharding.device_set) == 4, times.sharding
    assert {shard.data.shape[0] for shard in times.addressable_shards} == {2}
    for k, (ref_times, ref_count) in enumerate(alone):
        assert int(counts[k]) == int(ref_count) > 0, (k, counts[k], ref_count)
        got, ref = np.asarray(times[k]), np.asarray(ref_times)
        assert np.array_equal(np.isfinite(got), np.isfinite(ref))
        finite = np.isfinite(ref)
        assert np.max(np.abs(got[finite] - ref[finite])) < 1e-3, k
    # `batch_map` over the mesh: each device runs its two trials one after the other,
    # each the run alone bit for bit, and the results stay split the same way.
    seq_times, seq_counts = jax.jit(ns.batch_map(trial, mesh=mesh))(keys, taus)
    assert len(seq_times.sharding.device_set) == 4, seq_times.sharding
    assert {shard.data.shape[0] for shard in seq_times.addressable_shards} == {2}
    for k, (ref_times, ref_count) in enumerate(alone):
        assert int(seq_counts[k]) == int(ref_count), k
        assert np.array_equal(np.asarray(seq_times[k]), np.asarray(ref_times)), k
    try:
        ns.batch_map(trial, mesh=mesh)(keys[:6], taus[:6])
    except ValueError as error:
        assert "a batch of 6 cannot be split evenly" in str(error), error
    else:
        raise AssertionError("a batch of 6 over 4 devices was not refused")
    print("sharded ok", [int(c) for c in counts])


if __name__ == "__main__":
    main()
