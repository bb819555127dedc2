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
  time and the final state, float64;
- `sizes`: a recurrent LIF population of 250, 500 and 1000 neurons whose dense weights
  are differentiated (the usual case in training), float32: also the temporary memory
  of the compiled value and gradient (XLA's `memory_analysis`), in MiB and in copies
  of the weight matrix.

Prints, per workload and path, the first call (compile and run) and the best of
`--repeats` (5) warm calls, in seconds, and the ratio to the forward run.

With `--jaxsnn-python PYTHON` (an interpreter with jaxsnn, such as
`.venv-bench/bin/python`; jaxsnn is no neurosim dependency), `jaxsnn_reference.py` runs
in that interpreter as a child process, after neurosim's figures, and times jaxsnn's
own 5-120-3 Yin-Yang network at the same batch size (its example's parameters and
encoding, EventProp and its analytical backprop, see that file); its rows are printed
beside neurosim's with the ratios neurosim / jaxsnn: forward (`exact="layered"`
against jaxsnn's forward) and value+grad (`exact="layered"` against jaxsnn's
EventProp). `--json` prints the figures as one JSON line at the end (for `run_all.py`).

Run: `python benchmarks/gradients.py [--only yinyang|recurrent|sizes] [--jaxsnn-python
PYTHON] [--repeats 5] [--json]`.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


REPEATS = 5  # warm calls per figure (`--repeats`)
BATCH = 256  # Yin-Yang points per batch, neurosim's and jaxsnn's


def _time(fn, *args, repeats=REPEATS):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
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


def yinyang(repeats=REPEATS, jaxsnn_python=None):
    """neurosim's rows (and jaxsnn's, with `jaxsnn_python`), printed; the figures as a
    dict: {"neurosim": {key: {"label", "first_s", "best_s"}}, "jaxsnn": ...}."""
    import yinyang as yy

    import neurosim as ns
    from neurosim import losses

    params = yy.init_params(jax.random.PRNGKey(0))
    points, labels = yy.yinyang(BATCH, seed=42)

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

    functions = {  # key: (label, function)
        "forward": ("forward (gradients=False)", lambda p: batch_loss(p, False)),
        "value_and_grad_replay": (
            "value+grad, replay",
            jax.value_and_grad(lambda p: batch_loss(p, True)),
        ),
        "value_and_grad_checkpointed": (
            "value+grad, checkpointed",
            jax.value_and_grad(lambda p: batch_loss(p, "checkpointed")),
        ),
        "value_and_grad_eventprop": (
            'value+grad, gradients="eventprop"',
            jax.value_and_grad(lambda p: batch_loss(p, "eventprop")),
        ),
        "forward_layered": ('forward, exact="layered"', lambda p: batch_loss(p, "layered")),
        "value_and_grad_layered": (
            'value+grad, exact="layered"',
            jax.value_and_grad(lambda p: batch_loss(p, "layered")),
        ),
    }
    rows, ours = [], {}
    for key, (label, fn) in functions.items():
        first, best = _time(jax.jit(fn), params, repeats=repeats)
        rows.append((label, first, best))
        ours[key] = {"label": label, "first_s": first, "best_s": best}
    _report(f"yinyang: 5-120-3 LIF, batch {BATCH} (vmap), float32", rows)
    out = {
        "batch": BATCH,
        "repeats": repeats,
        "neuron": {k: float(v) for k, v in yy.NEURON.items()},
        "neurosim": ours,
    }
    if jaxsnn_python:
        out["jaxsnn"] = jaxsnn(jaxsnn_python, repeats)
        _report_jaxsnn(out)
    return out


def jaxsnn(python, repeats=REPEATS):
    """`jaxsnn_reference.py` under `python` (an interpreter with jaxsnn), at the same
    batch size; its JSON output, or {"error": ...}."""
    command = [str(python), os.path.join(HERE, "jaxsnn_reference.py")]
    command += ["--batch", str(BATCH), "--repeats", str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = [line for line in done.stderr.splitlines() if line.strip()][-1:]
        return {"error": f"jaxsnn_reference.py exited {done.returncode}: {tail}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratios(out):
    """neurosim / jaxsnn, warm and first call: forward (`exact="layered"` against
    jaxsnn's forward under EventProp) and value+grad (`exact="layered"` against jaxsnn's
    EventProp). Below 1: neurosim is faster."""
    ours = out["neurosim"]
    theirs = {row["backprop_method"]: row for row in out["jaxsnn"]["result"]}["eventprop"]
    pairs = {
        "forward": (ours["forward_layered"], theirs["forward"]),
        "value_and_grad": (ours["value_and_grad_layered"], theirs["value_and_grad"]),
    }
    return {
        name: {
            "warm": a["best_s"] / b["best_s"],
            "first_call": a["first_s"] / b["first_s"],
        }
        for name, (a, b) in pairs.items()
    }


def _report_jaxsnn(out):
    ref = out["jaxsnn"]
    if "error" in ref:
        print(f"\njaxsnn: failed: {ref['error']}")
        return
    versions, config = ref["versions"], ref["config"]
    print(
        f"\njaxsnn {versions['jaxsnn']} (jax {versions['jax']}): its 5-120-3 Yin-Yang "
        f"network, batch {config['batch']}, {config['input_spikes_per_sample']} input "
        f"spikes per sample, tau_mem {config['tau_mem_s']:g} s, tau_syn "
        f"{config['tau_syn_s']:g} s, event budgets {config['n_spikes']}, float32"
    )
    print(f"  {'':28s} {'first call':>10s} {'warm':>8s} {'x forward':>10s}")
    for row in ref["result"]:
        method = row["backprop_method"]
        forward = row["forward"]["best_s"]
        for key, label in (("forward", "forward"), ("value_and_grad", "value+grad")):
            timed = row[key]
            label = f"{label} ({method})"
            ratio = timed["best_s"] / forward
            print(
                f"  {label:28s} {timed['first_s']:10.2f} {timed['best_s']:8.3f} {ratio:10.1f}"
            )
    print("\nneurosim / jaxsnn (below 1: neurosim faster)       first call     warm")
    names = {
        "forward": 'forward: exact="layered" / jaxsnn',
        "value_and_grad": 'value+grad: exact="layered" / EventProp',
    }
    for name, r in ratios(out).items():
        print(f"  {names[name]:46s} {r['first_call']:10.2f} {r['warm']:8.2f}")


def recurrent(repeats=REPEATS):
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
    rows.append(("forward (gradients=False)", *_time(forward, net.arrays, repeats=repeats)))
    for path in (True, "checkpointed"):
        label = "value+grad, replay" if path is True else "value+grad, checkpointed"
        fn = eqx.filter_jit(eqx.filter_value_and_grad(lambda a, path=path: loss(a, path)))
        rows.append((label, *_time(fn, net.arrays, repeats=repeats)))
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


def sizes(repeats=REPEATS, n_values=(250, 500, 1000), t1=100.0):
    import numpy as np

    import neurosim as ns

    print(
        "\nsizes: recurrent LIF, dense weights (10% non-zero, N(0, 0.2)), 100 ms, float32"
    )
    print(
        f"  {'N':>5s} {'spikes':>7s} {'forward s':>10s} {'value+grad s':>13s} "
        f"{'x forward':>10s} {'first call s':>13s} {'temp MiB':>9s} {'x weights':>10s}"
    )
    for n in n_values:
        rng = np.random.default_rng(0)
        weights = rng.normal(0.0, 0.2, (n, n)) * (rng.random((n, n)) < 0.1)
        weights = jnp.asarray(weights, jnp.float32)
        drive = jnp.asarray(rng.uniform(1.05, 1.5, n), jnp.float32)

        def run(weights, gradients=True, n=n, drive=drive):
            return ns.simulate(
                ns.LIF(), n=n, t1=t1, current=drive, weights=weights,
                max_spikes=40 * n, gradients=gradients,
            )  # fmt: skip

        def loss(weights, run=run):
            times = run(weights).spike_times
            return jnp.sum(times, where=jnp.isfinite(times))

        forward = jax.jit(lambda w, run=run: run(w).num_spikes)
        value_and_grad = jax.jit(jax.value_and_grad(loss))
        _, warm_forward = _time(forward, weights, repeats=repeats)
        # Compiled once: the executable gives both the timings and its memory.
        start = time.perf_counter()
        compiled = value_and_grad.lower(weights).compile()
        compile_s = time.perf_counter() - start
        first, warm = _time(compiled, weights, repeats=repeats)
        first += compile_s
        temp = compiled.memory_analysis().temp_size_in_bytes
        print(
            f"  {n:5d} {int(forward(weights)):7d} {warm_forward:10.3f} {warm:13.3f} "
            f"{warm / warm_forward:10.1f} {first:13.2f} {temp / 2**20:9.1f} "
            f"{temp / weights.nbytes:10.1f}"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("yinyang", "recurrent", "sizes"))
    parser.add_argument(
        "--jaxsnn-python",
        help="an interpreter with jaxsnn: time jaxsnn's Yin-Yang network beside ours",
    )
    parser.add_argument(
        "--repeats", type=int, default=REPEATS, help="warm calls per figure"
    )
    parser.add_argument("--json", action="store_true", help="end with the figures as JSON")
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__}, {os.cpu_count()} CPU cores")
    figures = {}
    if args.only in (None, "yinyang"):
        figures["yinyang"] = yinyang(args.repeats, args.jaxsnn_python)
    if args.only in (None, "recurrent"):
        recurrent(args.repeats)
    if args.only in (None, "sizes"):
        sizes(args.repeats)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
