"""The cost of a gradient on the exact path: forward run, value and gradient by the
replay of the loop's events (the default), and by the checkpointed loop
(`gradients="checkpointed"`), side by side in one process; for the feed-forward
Yin-Yang network also the layered path (`exact="layered"`: no event loop, plain
autodiff).

Workloads:
- `yinyang`: the 5-120-3 LIF network of examples/yinyang.py at its initial weights,
  a batch of 256 points under `jax.vmap`, first-spike cross-entropy;
- `recurrent`: one random recurrent E/I network (tests/_random_networks.py, 80 + 20
  neurons, a scalar delay, a stepped current, Poisson input), a loss on every spike
  time and the final state, float64.

Prints, per workload and path, the first call (compile and run) and the best of 3
warm calls, in seconds, and the ratio to the forward run.

Run: `python benchmarks/gradients.py [--only yinyang|recurrent]`.
"""

import argparse
import os
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def _time(fn, *args):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    warm = []
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        warm.append(time.perf_counter() - start)
    return first, min(warm)


def _report(name, rows):
    forward = rows[0][2]
    print(f"\n{name}")
    print(f"  {'':28s} {'first call':>10s} {'warm':>8s} {'x forward':>10s}")
    for label, first, warm in rows:
        print(f"  {label:28s} {first:10.2f} {warm:8.3f} {warm / forward:10.1f}")


def yinyang():
    import yinyang as yy

    import neurosim as ns
    from neurosim import losses

    params = yy.init_params(jax.random.PRNGKey(0))
    points, labels = yy.yinyang(256, seed=42)

    def first_times(params, point, gradients):
        layered = gradients == "layered"
        sol = ns.simulate(
            yy.network(params, point),
            t1=yy.T1,
            max_spikes=yy.MAX_SPIKES,
            gradients=True if layered else gradients,
            exact="layered" if layered else None,
        )
        return sol.first_spike_times("out")

    def batch_loss(params, gradients):
        times = jax.vmap(first_times, (None, 0, None))(params, points, gradients)
        return jnp.mean(losses.first_spike_cross_entropy(times, labels, tau=yy.TAU_LOSS))

    rows = []
    forward = jax.jit(lambda p: batch_loss(p, False))
    rows.append(("forward (gradients=False)", *_time(forward, params)))
    names = {
        True: "value+grad, replay",
        "checkpointed": "value+grad, checkpointed",
        "layered": 'value+grad, exact="layered"',
    }
    for path in (True, "checkpointed"):
        fn = jax.jit(jax.value_and_grad(lambda p, path=path: batch_loss(p, path)))
        rows.append((names[path], *_time(fn, params)))
    layered = jax.jit(lambda p: batch_loss(p, "layered"))
    rows.append(('forward, exact="layered"', *_time(layered, params)))
    fn = jax.jit(jax.value_and_grad(lambda p: batch_loss(p, "layered")))
    rows.append((names["layered"], *_time(fn, params)))
    _report("yinyang: 5-120-3 LIF, batch 256 (vmap), float32", rows)


def recurrent():
    jax.config.update("jax_enable_x64", True)
    import _random_networks as rn

    import neurosim as ns

    structure = rn.STRUCTURES["cuba_small"]
    structure = rn.Structure(**{**structure.__dict__, "t1": 100.0, "max_spikes": 1000})
    net = rn.draw(0, structure)
    delay_table = rn._delay_table(structure)

    def loss(arrays, gradients):
        with jax.ensure_compile_time_eval():
            network = rn.build(structure, arrays, delay_table)
        sol = ns.simulate(
            network,
            y0=rn.initial_state(structure, arrays),
            t1=structure.t1,
            max_spikes=structure.max_spikes,
            exact=True,
            gradients=gradients,
        )
        times = jnp.where(jnp.isfinite(sol.spike_times), sol.spike_times, 0.0)
        final = sum(jnp.sum(state.v) for state in sol.final_state.values())
        return jnp.sum(times) + final

    rows = []
    forward = eqx.filter_jit(lambda a: loss(a, False))
    rows.append(("forward (gradients=False)", *_time(forward, net.arrays)))
    for path in (True, "checkpointed"):
        label = "value+grad, replay" if path is True else "value+grad, checkpointed"
        fn = eqx.filter_jit(eqx.filter_value_and_grad(lambda a, path=path: loss(a, path)))
        rows.append((label, *_time(fn, net.arrays)))
    count = int(
        eqx.filter_jit(
            lambda a: (
                ns.simulate(
                    rn.build(structure, a, delay_table),
                    y0=rn.initial_state(structure, a),
                    t1=structure.t1,
                    max_spikes=structure.max_spikes,
                    exact=True,
                    gradients=False,
                ).num_spikes
            )
        )(net.arrays)
    )
    _report(
        f"recurrent: random E/I network, 80 + 20 CubaLIF, {count} spikes in "
        f"{structure.t1:g} ms, float64",
        rows,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("yinyang", "recurrent"))
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__}, {os.cpu_count()} CPU cores")
    if args.only in (None, "yinyang"):
        yinyang()
    if args.only in (None, "recurrent"):
        recurrent()


if __name__ == "__main__":
    main()
