"""A clock-driven CUBA reference with Brian2's update order, on neurosim's connectivity.

Each step of `dt`: exact propagation of the linear sub-threshold equations over `dt`
(v held while refractory), threshold test on the grid, spike delivery (`ge += we`,
`gi += wi`) and reset at the step time, refractory for `t_ref` from the step time.
This is what Brian2's CUBA example computes with its default `exact` integrator. As
`dt -> 0` it converges to the event-driven solution, so it checks neurosim's CUBA
independently of neurosim's event loop.

Usage: `python benchmarks/clock_driven.py [n] [t1_ms] [seed]`.
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import neurosim as ns

TAU_M, TAU_E, TAU_I = 20.0, 5.0, 10.0
V_T, V_R, E_L, T_REF = -50.0, -60.0, -49.0, 5.0


def cuba_connectivity(seed, n, p=0.02):
    """The same random connectivity as `neurosim.networks.vogels_abbott_cuba`."""
    rng = np.random.default_rng(seed)
    connected = rng.random((n, n)) < p
    v0 = -60.0 + rng.random(n) * 10.0
    return connected, v0


def run_clock_driven(seed, n, t1, dt, we, wi):
    connected, v0 = cuba_connectivity(seed, n)
    n_exc = int(round(0.8 * n))
    weights = jnp.asarray(
        connected * np.where(np.arange(n) < n_exc, we, wi)[:, None], jnp.float32
    )
    a_m, a_e, a_i = np.exp(-dt / TAU_M), np.exp(-dt / TAU_E), np.exp(-dt / TAU_I)
    k_e = TAU_E / (TAU_E - TAU_M) * (a_e - a_m)
    k_i = TAU_I / (TAU_I - TAU_M) * (a_i - a_m)
    steps = int(round(t1 / dt))
    exc_rows = weights[:n_exc]
    inh_rows = weights[n_exc:]

    def step(carry, k):
        v, ge, gi, last = carry
        t = (k + 1) * dt
        active = (t - dt - last) >= T_REF - 1e-9
        v_new = E_L + (v - E_L) * a_m + ge * k_e + gi * k_i
        v = jnp.where(active, v_new, v)
        ge, gi = ge * a_e, gi * a_i
        fired = v > V_T
        f = fired.astype(jnp.float32)
        ge = ge + f[:n_exc] @ exc_rows
        gi = gi + f[n_exc:] @ inh_rows
        v = jnp.where(fired, V_R, v)
        last = jnp.where(fired, t, last)
        return (v, ge, gi, last), jnp.sum(fired)

    init = (jnp.asarray(v0, jnp.float32), jnp.zeros(n), jnp.zeros(n), jnp.full(n, -1e9))
    run = jax.jit(lambda init: jax.lax.scan(step, init, jnp.arange(steps))[1])
    counts = run(init).block_until_ready()
    start = time.perf_counter()
    counts = run(init).block_until_ready()
    return int(counts.sum()), time.perf_counter() - start


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    t1 = float(sys.argv[2]) if len(sys.argv) > 2 else 1000.0
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    we, wi = 60 * 0.27 / 10 * 4000 / n, -20 * 4.5 / 10 * 4000 / n
    net, y0 = ns.networks.vogels_abbott_cuba(seed, n=n, we=we, wi=wi)
    sol = ns.simulate(net, t1=t1, y0=y0, max_spikes=200_000)
    start = time.perf_counter()
    sol = jax.block_until_ready(ns.simulate(net, t1=t1, y0=y0, max_spikes=200_000))
    wall = time.perf_counter() - start
    rate = int(sol.num_spikes) / n / (t1 / 1000.0)
    print(f"CUBA n={n} t1={t1} ms seed={seed}")
    print(
        f"  neurosim (event-driven, exact times): {int(sol.num_spikes)} spikes, {rate:.3f} Hz, {wall:.2f} s"
    )
    for dt in (0.1, 0.05, 0.01):
        spikes, wall = run_clock_driven(seed, n, t1, dt, we, wi)
        print(
            f"  clock-driven dt={dt:<5} ms:            {spikes} spikes, {spikes / n / (t1 / 1000.0):.3f} Hz, {wall:.2f} s"
        )


if __name__ == "__main__":
    main()
