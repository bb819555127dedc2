"""The benchmark suite: neurosim against Brian2, jaxsnn and the plain diffrax loop.

`make bench` runs this script with neurosim's `.venv` after creating `.venv-bench`
(Brian2 and jaxsnn, see `requirements-bench.txt`). By hand:

    .venv/bin/python benchmarks/run_all.py [--quick] [--brian2-python PYTHON]
        [--jaxsnn-python PYTHON]

where PYTHON is the benchmark environment's interpreter (default
`.venv-bench/bin/python` for both). Brian2 runs in its own process
(`brian2_reference.py`, which prints JSON), and so does jaxsnn (`jaxsnn_reference.py`,
launched by `gradients.py`); neurosim runs here, never at the same time as either. Every neurosim call is timed with
`jax.block_until_ready`: the first call (compilation plus one run) apart from the warm
calls, whose median is reported. Writes `benchmarks/RESULTS.md` (see `bench_report.py`)
and the raw figures to `out/bench/results.json`. Numbers are written, never asserted; a
workload that fails is reported as such in RESULTS.md and the others still run.

Workloads (simulated time in ms, wall times in s):

1. CUBA (Vogels-Abbott, Brian2's example): 4000 LIF, 1 s, seeds 0-3. Brian2: a warm
   `run()` and its simulation loop (profiled code objects); neurosim:
   `simulate(net, gradients=False)`, first call and warm calls.
2. Compile time of neurosim's CUBA (first call, and first call minus warm call).
3. Accuracy: one LIF (tau = 10 ms, threshold 1, input 1.5) for 1 s against the closed
   form k * 10 ln 3 ms: Brian2 at dt = 0.1 and 0.01 ms; neurosim in float32 (default
   tolerances) and float64 (a separate process with `jax_enable_x64`, tolerances 1e-12).
4. Sweep: 1024 Izhikevich neurons with per-neuron a, b, c, d (`izhikevich_params`,
   handed to Brian2 in an .npz), I = 10, 1 s. Brian2 with Euler at dt = 0.1 and 0.01 ms;
   neurosim exact (Tsit5, spikes located; Izhikevich has no closed form) as one
   population (each neuron on its own clock, the default, and on the network's clock)
   and under `jax.vmap`, and
   Brian2's scheme (Euler, threshold on the grid) under `jax.vmap`; spike counts neuron
   by neuron.
5. Cost per event: the network of `per_event.py` at N = 10, 100, 1000, 4000, neurosim
   against the plain diffrax loop of `plain_diffrax.py`.
6. Gradients: value and gradient of the sum of all spike times of a 100-neuron
   recurrent LIF network driven by Poisson input for 100 ms, against its forward runs,
   by the replay of its events (the default), by the replay compiled whole
   (`gradients="whole"`) and by the checkpointed loop.
7. Long runs (`drift.py`): one LIF firing every 10 ln 3 ms, the k-th spike against
   k * 10 ln 3 for k = 1e3, 1e4, 1e5, float32 and float64.
8. Agreement (`agreement.py`): random recurrent E/I networks, every pair of paths
   (exact loop with synapse lists in both CPU forms and differentiable, dense, ODE),
   12 seeds per precision: networks checked, networks that agree, the worst pair.
9. Accuracy of the default tolerances (`accuracy.py`): every model's reference case,
   float64 and float32 with the defaults against float64 at rtol = atol = 1e-12.
10. Scaling (`cuba_scaling.py`): CUBA with a fixed fan-out of 80 at N = 1000, 4000,
   16 000 and 64 000, 1 s, each size in its own process beside Brian2's: build time,
   compile time, run time, cost per spike and peak memory.
11. Yin-Yang (`gradients.py --only yinyang --jaxsnn-python`, its own process): the
   5-120-3 LIF network at a batch of 256, forward and value+grad on every gradient
   path, beside jaxsnn's own 5-120-3 network at the same batch (`jaxsnn_reference.py`:
   EventProp and analytical backprop); first call and best of 5 warm calls.

12. COBA (Brette et al. 2007, benchmark 1; `neurosim.networks.brette_coba`, seed 1):
   4000 neurons, 1 s, beside Brian2 (`brian2_reference.py coba`: the same equations,
   parameters and initial-state distributions, Euler at dt = 0.1 ms, warm `run()`).
   neurosim: `simulate(net, y0=y0, t1=t1, gradients=False)` in float32 at the default
   tolerances on the network's clock (the default at this size) and on per-neuron
   clocks (`clocks="neuron"`), beside Brian2.
13. Izhikevich (2003) (`neurosim.networks.izhikevich_2003`, 1000 neurons all to all,
   thalamic noise redrawn every ms), without and with a 1 ms delay, 1 s: a float64
   reference at rtol = atol = 1e-10 (its own process, which also writes the network to
   `izhikevich_2003_network.npz`), neurosim in float32 at the default tolerances, and
   Brian2 on the same network with Euler at dt = 0.1 and 0.01 ms; each run's
   divergence from the reference (spikes within 0.1 ms, `tests/_compare.py`).
14. COBA at equal accuracy (`coba_accuracy.py`): the network of 12 drawn once in
   float64 and handed to Brian2 (Euler at dt = 0.1, 0.01 and 0.001 ms); neurosim in
   float32 and float64 and Brian2, each against neurosim in float64 at
   rtol = atol = 1e-12: divergence (as in 13) and wall time.

`--quick` shrinks the workloads (CUBA 1000 neurons for 200 ms, 256 Izhikevich neurons
for 200 ms, per-event N = 100 and 1000, scaling N = 1000 and 4000 for 200 ms, COBA 500
neurons for 100 ms, Izhikevich (2003) for 200 ms) to check the suite in a few minutes.
"""

import argparse
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import diffrax as dfx
import equinox as eqx
import jax
import jax.experimental.sparse as jsparse
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from _child import child_json
from bench_report import failures, write_report
from cuba_scaling import sweep as cuba_scaling_sweep
from drift import drift
from per_event import network as per_event_network
from plain_diffrax import run_plain

import neurosim as ns
from neurosim import _per_neuron

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
from _compare import first_divergence  # noqa: E402

OUT = ROOT / "out" / "bench"
PERIOD = 10.0 * math.log(3.0)  # ms, the closed-form LIF's inter-spike interval
FULL = {
    "cuba": {"n": 4000, "t1": 1000.0, "seeds": [0, 1, 2, 3]},
    "izhikevich": {"n": 1024, "t1": 1000.0, "euler_dts": [0.1, 0.01]},
    "per_event": [10, 100, 1000, 4000],
    "scaling": {"sizes": [1000, 4000, 16_000, 64_000], "t1": 1000.0},
    "drift": [1000, 10_000, 100_000],
    "agreement_seeds": 12,
    "accuracy_quick": False,
    # Seed 1: seed 0 of `brette_coba` at 4000 neurons falls silent after ~30 ms.
    # Both clocks at the benchmark's size (per-neuron clocks compiled whole cost about
    # what the network clock does there). One warm call each (about a minute each).
    "coba": {
        "n": 4000,
        "t1": 1000.0,
        "seed": 1,
        "neuron_clocks": [4000, 1000.0],
        "warm_calls": 1,
    },
    "izhikevich_2003": {"t1": 1000.0, "seed": 0, "delays": [None, 1.0], "dts": [0.1, 0.01]},
    "coba_accuracy": {"t1": 1000.0, "seed": 1, "dts": [0.1, 0.01, 0.001]},
}
QUICK = {
    "cuba": {"n": 1000, "t1": 200.0, "seeds": [0, 1, 2]},
    "izhikevich": {"n": 256, "t1": 200.0, "euler_dts": [0.1]},
    "per_event": [100, 1000],
    "scaling": {"sizes": [1000, 4000], "t1": 200.0},
    "drift": [1000, 10_000],
    "agreement_seeds": 4,
    "accuracy_quick": True,
    "coba": {"n": 500, "t1": 100.0, "seed": 1, "neuron_clocks": [500, 100.0]},
    "izhikevich_2003": {"t1": 200.0, "seed": 0, "delays": [None, 1.0], "dts": [0.1, 0.01]},
    "coba_accuracy": {"t1": 100.0, "seed": 1, "dts": [0.1, 0.01]},
}


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def attempt(fn):
    """`fn()`, or {"error": ...} when it raises: a failing workload is reported in
    RESULTS.md and the others still run."""
    try:
        return fn()
    except Exception as error:  # noqa: BLE001 (any failure is a finding to report)
        lines = [line for line in str(error).splitlines() if line.strip()]
        message = f"{type(error).__name__}: {lines[0] if lines else ''}"[:400]
        log(f"failed: {message}")
        return {"error": message}


def timed_calls(fn, repeats):
    """Call `fn` once (compile and run), then `repeats` times warm, each blocked until
    ready; returns the last output and the timing figures."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        warm.append(time.perf_counter() - start)
    return out, _timing(first, warm)


def _timing(first, warm):
    """The timing figures of a first call and warm calls (s)."""
    median = statistics.median(warm)
    return {
        "first_s": first,
        "warm_s": warm,
        "median_s": median,
        "first_minus_warm_s": first - median,
    }


def interleaved_calls(fns, repeats):
    """Each of `fns` (name -> function) called once (compile and run), then `repeats`
    rounds that call every one of them in turn: a slow phase of the machine then slows
    every function alike, and the ratio of two medians stays fair. Returns name ->
    (last output, timing as in `timed_calls`), or name -> {"error": ...} where the
    first call failed (that function is then left out of the rounds)."""
    out, first, warm = {}, {}, {}
    for name, fn in fns.items():

        def first_call(fn=fn):
            start = time.perf_counter()
            result = jax.block_until_ready(fn())
            return result, time.perf_counter() - start

        called = attempt(first_call)
        if isinstance(called, dict):  # failed
            out[name] = called
            continue
        out[name], first[name] = called
        warm[name] = []
    for _ in range(repeats):
        for name in warm:
            start = time.perf_counter()
            out[name] = jax.block_until_ready(fns[name]())
            warm[name].append(time.perf_counter() - start)
    timed = {}
    for name, result in out.items():
        if name not in warm:
            timed[name] = result
            continue
        timed[name] = result, _timing(first[name], warm[name])
    return timed


# ---------------------------------------------------------------- Brian2 (subprocess)


def brian2(python, *args):
    """Run one workload of `brian2_reference.py` under `python`; its JSON output."""
    command = [str(python), str(HERE / "brian2_reference.py"), *map(str, args)]
    log("Brian2: " + " ".join(map(str, args)))
    return child_json(command, cwd=ROOT)


# ---------------------------------------------------------------- neurosim workloads


def cuba_run(net, y0, t1):
    return ns.simulate(net, t1=t1, y0=y0, max_spikes=400_000, gradients=False)


def compile_time(net, y0, t1):
    """Ahead-of-time tracing and lowering, then XLA compilation, of one CUBA run (s),
    with JAX's caches cleared first so that nothing traced before is reused."""
    jax.clear_caches()
    start = time.perf_counter()
    lowered = eqx.filter_jit(cuba_run).lower(net, y0, t1)
    lowering = time.perf_counter() - start
    start = time.perf_counter()
    lowered.compile()
    return {"lower_s": lowering, "xla_compile_s": time.perf_counter() - start}


def cuba(seeds, n, t1, repeats):
    """neurosim's CUBA: `repeats` warm calls per seed (as many as Brian2's runs per
    seed), and the compile time of each seed measured apart."""
    scale = 4000 / n  # keep the input per neuron at smaller sizes, as cuba.py does
    runs = []
    for seed in seeds:
        net, y0 = ns.networks.vogels_abbott_cuba(
            seed, n=n, we=60 * 0.27 / 10 * scale, wi=-20 * 4.5 / 10 * scale
        )
        sol, timing = timed_calls(lambda net=net, y0=y0: cuba_run(net, y0, t1), repeats)
        spikes = int(sol.num_spikes)
        runs.append(
            {
                "seed": seed,
                "spikes": spikes,
                "rate_hz": spikes / n / (t1 / 1000.0),
                "iterations": int(sol.iterations),
                "overflow": bool(sol.overflow),
                **timing,
                **compile_time(net, y0, t1),
            }
        )
        log(
            f"neurosim CUBA seed {seed}: {spikes} spikes, first call "
            f"{timing['first_s']:.1f} s, warm {timing['median_s']:.2f} s"
        )
    return runs


def lif_accuracy(x64, repeats, exact=None):
    """The single LIF against k * 10 ln 3 ms, in the precision currently enabled, with
    the closed form (`exact=None`, the default for the LIF) or Tsit5 (`exact=False`)."""
    tol = 1e-12 if x64 else 1e-6
    neuron = ns.LIF(tau_mem=10.0, v_th=1.0, v_reset=0.0)
    method = "Tsit5" if exact is False else "closed form"

    def run():
        return ns.simulate(
            neuron,
            n=1,
            t1=1000.0,
            current=1.5,
            max_spikes=200,
            rtol=tol,
            atol=tol,
            gradients=False,
            exact=exact,
        )

    sol, timing = timed_calls(run, repeats)
    times, _ = sol.spikes()
    exact = PERIOD * np.arange(1, int(1000.0 / PERIOD) + 1)
    k = min(len(times), len(exact))
    error = np.abs(times[:k].astype(np.float64) - exact[:k])
    return {
        "method": method,
        "dtype": str(times.dtype),
        "rtol": tol,
        "atol": tol,
        "spikes": len(times),
        "expected_spikes": len(exact),
        "max_abs_error_ms": float(error.max()),
        "first_spike_ms": float(times[0]),
        **timing,
    }


def lif_accuracy_x64(repeats):
    """`lif_accuracy` in float64, in a fresh process (x64 must be on before any array)."""
    return child_json([sys.executable, __file__, "--lif-x64", "--repeats", str(repeats)])


def agreement_sweep(seeds):
    """`agreement.py` over `seeds` random networks per precision (its own process:
    it switches precision between sweeps); its summary."""
    command = [sys.executable, str(HERE / "agreement.py"), "--seeds", str(seeds)]
    done = subprocess.run(command + ["--quiet", "--json"], capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def accuracy_cases(quick):
    """`accuracy.py` (its own process: it switches precision between runs), every case
    or its `--quick` subset; its rows."""
    path = OUT / "accuracy.json"
    command = [sys.executable, str(HERE / "accuracy.py"), "--json", str(path)]
    done = subprocess.run(
        command + (["--quick"] if quick else []), capture_output=True, text=True
    )
    if done.returncode != 0:
        tail = [line for line in done.stderr.splitlines() if line.strip()][-1:]
        raise RuntimeError(f"accuracy.py exited {done.returncode}: {tail}")
    return json.loads(path.read_text())


def yinyang(jaxsnn_python, repeats):
    """`gradients.py --only yinyang` in its own process, with jaxsnn's rows from
    `jaxsnn_python` (itself a child of that process); its figures."""
    command = [sys.executable, str(HERE / "gradients.py"), "--only", "yinyang", "--json"]
    command += ["--jaxsnn-python", str(jaxsnn_python), "--repeats", str(repeats)]
    log(f"jaxsnn: {jaxsnn_python}")
    return child_json(command)["yinyang"]


def drift_x64(ks):
    """`drift.drift` in float64, in a fresh process (x64 must be on before any array)."""
    command = [sys.executable, str(HERE / "drift.py"), "--x64", "--json", "--ks"]
    return child_json(command + [str(k) for k in ks])


def izhikevich_params(n, seed=0):
    """Per-neuron a, b, c, d: 80% between regular spiking (r = 0) and chattering (r = 1),
    a = 0.02, b = 0.2, c = -65 + 15 r^2, d = 8 - 6 r^2; 20% between fast spiking
    (a = 0.1, b = 0.2) and low-threshold spiking (a = 0.02, b = 0.25), c = -65, d = 2."""
    rng = np.random.default_rng(seed)
    n_rs = int(round(0.8 * n))
    r_rs, r_fs = rng.random(n_rs), rng.random(n - n_rs)
    return {
        "a": np.concatenate([np.full(n_rs, 0.02), 0.02 + 0.08 * r_fs]),
        "b": np.concatenate([np.full(n_rs, 0.2), 0.25 - 0.05 * r_fs]),
        "c": np.concatenate([-65.0 + 15.0 * r_rs**2, np.full(n - n_rs, -65.0)]),
        "d": np.concatenate([8.0 - 6.0 * r_rs**2, np.full(n - n_rs, 2.0)]),
    }


def izhikevich_lanes(t1, **kwargs):
    """One Izhikevich neuron per `jax.vmap` lane; returns (spike count, overflow)."""

    def one(a, b, c, d):
        sol = ns.simulate(
            ns.Izhikevich(a=a, b=b, c=c, d=d),
            n=1,
            t1=t1,
            current=10.0,
            max_spikes=400,
            gradients=False,
            **kwargs,
        )
        return sol.num_spikes, sol.overflow

    return jax.jit(jax.vmap(one))


def izhikevich(params, t1, repeats, euler_dts):
    """The sweep in neurosim: exact as one population and under vmap, then Brian2's
    scheme (Euler, threshold tested at the end of each step) under vmap."""
    n = len(params["a"])
    arrays = {name: jnp.asarray(params[name], jnp.float32) for name in "abcd"}
    population = ns.Izhikevich(**arrays)

    # The default: each neuron on its own clock (lanes of one loop); then the network's
    # clock (one solve of all neurons, stopped at every spike). All of them are timed
    # in interleaved rounds (`interleaved_calls`): the goal compares two of them.
    fns = {}
    for name, clocks in (("per-neuron clocks", None), ("network clock", "network")):

        def whole(clocks=clocks):
            return ns.simulate(
                population,
                n=n,
                t1=t1,
                current=10.0,
                max_spikes=80 * n,
                gradients=False,
                clocks=clocks,
            )

        fns[f"exact, one population, {name}"] = whole
    schemes = {"exact, vmap": (None, {})}
    for dt in euler_dts:
        kwargs = {"solver": dfx.Euler(), "dt0": dt, "locate_spikes": False}
        schemes[f"Euler dt = {dt}, vmap"] = (dt, kwargs)
    for name, (_, kwargs) in schemes.items():
        fn = izhikevich_lanes(t1, **kwargs)
        fns[name] = lambda fn=fn: fn(**arrays)
    runs = {}
    for name, timed in interleaved_calls(fns, repeats).items():
        if isinstance(timed, dict):  # failed
            raise RuntimeError(f"Izhikevich sweep, {name}: {timed['error']}")
        result, timing = timed
        if name in schemes:
            counts, overflow = result
            runs[name] = {
                "counts": np.asarray(counts),
                "overflow": bool(np.any(overflow)),
                "euler_dt": schemes[name][0],
                **timing,
            }
        else:
            _, neurons = result.spikes()
            runs[name] = {
                "counts": np.bincount(neurons, minlength=n),
                "overflow": bool(result.overflow),
                **timing,
            }
    for name, r in runs.items():
        log(
            f"neurosim Izhikevich {name}: {int(np.sum(r['counts']))} spikes, "
            f"warm {r['median_s']:.2f} s"
        )
    return runs


def per_event_size(n, repeats):
    """One row of the per-event table: per_event.py's network and simulated time. The
    weights go in as a BCOO matrix, which neurosim stores by rows exactly like the
    (pre, post, value) triples per_event.py passes."""
    weights, current, v0 = per_event_network(n)
    t1 = float(max(20.0, 4000.0 / n * 20.0))
    lif = ns.LIF(tau_mem=20.0, tau_syn=5.0)
    sparse = jsparse.BCOO.fromdense(jnp.asarray(weights, jnp.float32))
    population = ns.Population(lif, n, jnp.asarray(current, jnp.float32))
    net = ns.Network({"p": population}, [ns.Projection("p", "p", sparse)])
    y0 = {"p": eqx.tree_at(lambda s: s.v, lif.init_state(n), jnp.asarray(v0, jnp.float32))}
    row = {"n": n, "t1": t1}
    for gradients in (True, False):
        sol, timing = timed_calls(
            lambda g=gradients: ns.simulate(
                net, t1=t1, y0=y0, max_spikes=20_000, gradients=g
            ),
            repeats,
        )
        row[f"neurosim_grad_{gradients}"] = {"spikes": int(sol.num_spikes), **timing}
    args = [jnp.asarray(x, jnp.float32) for x in (weights, current, v0)]
    (_, _, spikes), timing = timed_calls(
        lambda: run_plain(*args, t1, max_spikes=20_000), repeats
    )
    row["plain"] = {"spikes": int(spikes), **timing}
    log(
        f"per event N = {n}: neurosim {row['neurosim_grad_True']['spikes']} spikes "
        f"{row['neurosim_grad_True']['median_s']:.3f} s, plain {int(spikes)} spikes "
        f"{timing['median_s']:.3f} s"
    )
    return row


def gradients(repeats, n=100, n_in=50, t1=100.0):
    """Value and gradient (recurrent and input weights) of the sum of all spike times of a
    recurrent LIF network with Poisson input, against its forward runs."""
    rng = np.random.default_rng(0)
    key = jax.random.PRNGKey(0)
    times, sources = ns.inputs.poisson_spikes(key, 20.0, num_sources=n_in, t1=t1)
    # Host arrays: SpikeTrains checks its source indices with Python ints when it is
    # built, which fails under jit on closed-over device arrays.
    times, sources = np.asarray(times), np.asarray(sources)
    w_in = jnp.asarray(rng.uniform(0.0, 0.5, (n_in, n)), jnp.float32)
    w = jnp.asarray(rng.normal(0.0, 0.2, (n, n)) * (rng.random((n, n)) < 0.1), jnp.float32)
    neuron = ns.LIF()

    def forward(w, w_in, gradients):
        return ns.simulate(
            neuron,
            n=n,
            t1=t1,
            weights=w,
            input_spikes=(times, sources),
            input_weights=w_in,
            max_spikes=4000,
            gradients=gradients,
        )

    def loss(w, w_in, gradients=True):
        spike_times = forward(w, w_in, gradients).spike_times
        return jnp.sum(jnp.where(jnp.isfinite(spike_times), spike_times, 0.0))

    def checkpointed(w, w_in):
        return loss(w, w_in, "checkpointed")

    def whole(w, w_in):
        return loss(w, w_in, "whole")

    def eventprop(w, w_in):
        return loss(w, w_in, "eventprop")

    functions = {
        "forward, gradients=False": jax.jit(lambda *ws: forward(*ws, False).num_spikes),
        "forward, gradients=True": jax.jit(lambda *ws: forward(*ws, True).num_spikes),
        "value_and_grad": jax.jit(jax.value_and_grad(loss, argnums=(0, 1))),
        "value_and_grad, gradients='whole'": jax.jit(
            jax.value_and_grad(whole, argnums=(0, 1))
        ),
        "value_and_grad, checkpointed": jax.jit(
            jax.value_and_grad(checkpointed, argnums=(0, 1))
        ),
        "value_and_grad, gradients='eventprop'": jax.jit(
            jax.value_and_grad(eventprop, argnums=(0, 1))
        ),
    }
    out = {
        "n": n,
        "n_inputs": n_in,
        "t1": t1,
        "input_spikes": int(np.isfinite(times).sum()),
    }
    # A few ms per call: more calls than the other figures, in rounds that call each
    # function in turn, so that the ratio of two medians is not one noisy call's or
    # one slow phase's.
    calls = max(repeats, 15)
    called = interleaved_calls(
        {name: (lambda fn=fn: fn(w, w_in)) for name, fn in functions.items()}, calls
    )
    gradient = {}
    for name, timed in called.items():
        if isinstance(timed, dict):  # failed
            out[name] = timed
            continue
        result, out[name] = timed
        log(f"gradients, {name}: warm {out[name]['median_s']:.3f} s")
        if name.startswith("value_and_grad"):
            grads = jnp.concatenate([g.ravel() for g in result[1]])
            gradient[name] = grads
            if name == "value_and_grad":
                out.update(
                    loss=float(result[0]),
                    grad_norm=float(jnp.linalg.norm(grads)),
                    grad_finite=bool(jnp.all(jnp.isfinite(grads))),
                )
        else:
            out["spikes"] = int(result)
    # How far each other form's gradient is from the default's (relative, 2-norm).
    if "value_and_grad" in gradient:
        reference = gradient["value_and_grad"]
        out["relative_to_default"] = {
            name: float(jnp.linalg.norm(g - reference) / jnp.linalg.norm(reference))
            for name, g in gradient.items()
            if name != "value_and_grad"
        }
    return out


# ---------------------------------------------------------------- the run


def load_average():
    """Other processes on the machine slow every figure down; the report shows the load."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds():
    """(CPU time all processes have used, CPU time this process and its children have
    used), in s; their growth over the run tells what other processes took."""
    usage = [
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    ]
    own = sum(r.ru_utime + r.ru_stime for r in usage)
    stat = Path("/proc/stat")
    if not stat.exists():
        return None, own
    ticks = [int(x) for x in stat.read_text().split("\n", 1)[0].split()[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK"), own


def others_share(start, wall):
    """The CPU time other processes used during the run, as text."""
    (busy0, own0), (busy1, own1) = start, cpu_seconds()
    if busy0 is None:
        return "unknown"
    others = max(busy1 - busy0 - (own1 - own0), 0.0)
    return (
        f"{others:.0f} s of CPU time in {wall:.0f} s of wall time "
        f"({others / wall:.0%} of one core)"
    )


def machine(brian2_versions, load_at_start, others):
    """CPU, cores, OS, Python, date and the versions that matter."""
    info = {"cpu": "unknown", "cores": os.cpu_count(), "os": platform.platform()}
    cpuinfo, release = Path("/proc/cpuinfo"), Path("/etc/os-release")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        info["cpu"] = names[0] if names else "unknown"
    if release.exists():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                name = line.split("=", 1)[1].strip('"')
                info["os"] = f"{name}, {platform.platform()}"
    return {
        **info,
        "memory": _memory(),
        "neurosim": _revision(),
        "load average (1, 5, 15 min) at the start": load_at_start,
        "other processes during the run": others,
        "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "jax": f"{jax.__version__} ({jax.default_backend()})",
        "equinox": eqx.__version__,
        "diffrax": dfx.__version__,
        "optimistix": optx.__version__,
        "numpy": np.__version__,
        "brian2": brian2_versions.get("brian2", "not run"),
        "numpy (Brian2 environment)": brian2_versions.get("numpy", "not run"),
        "cython (Brian2 environment)": brian2_versions.get("cython", "not run"),
    }


def _revision():
    """The git commit of the neurosim measured, and whether neurosim/ had local changes."""
    try:
        git = ["git", "-C", str(ROOT)]
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "neurosim"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{ns.__version__} (not a git checkout)"
    return f"{ns.__version__}, commit {commit}" + (" with local changes" if changed else "")


def _memory():
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return "unknown"
    kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
    return f"{kib / 2**20:.0f} GiB"


def jsonable(x):
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray | np.generic):
        return x.tolist()
    return x


def cuba_forms(seed, n, t1, repeats, delay=None):
    """neurosim's CUBA (one seed; with a synaptic `delay` on every connection if given)
    compiled with the event loop in both its forms, called in turn: one compiled
    function (the default on a CPU, `neurosim._cpu`) and a kernel per operation (the
    usual XLA form, as before). Same spikes."""
    scale = 4000 / n
    net, y0 = ns.networks.vogels_abbott_cuba(
        seed, n=n, we=60 * 0.27 / 10 * scale, wi=-20 * 4.5 / 10 * scale, delay=delay
    )
    jax.clear_caches()
    whole = eqx.filter_jit(cuba_run).lower(net, y0, t1).compile()
    with mock.patch.object(_per_neuron, "compiles_whole", lambda: False):
        jax.clear_caches()
        per_kernel = eqx.filter_jit(cuba_run).lower(net, y0, t1).compile()
    jax.clear_caches()
    forms = {"whole": whole, "per_kernel": per_kernel}
    warm = {name: [] for name in forms}
    spikes = {}
    for _ in range(repeats + 1):  # the first round warms both up
        for name, compiled in forms.items():
            start = time.perf_counter()
            sol = jax.block_until_ready(compiled(net, y0, t1))
            warm[name].append(time.perf_counter() - start)
            spikes[name] = int(sol.num_spikes)
    out = {"seed": seed, "delay_ms": delay, "iterations": int(sol.iterations)}
    for name in forms:
        times = warm[name][1:]
        out[name] = {"spikes": spikes[name], "warm_s": times, "best_s": min(times)}
        out[name]["median_s"] = statistics.median(times)
    log(
        f"neurosim CUBA seed {seed}, delay {delay}: loop as one function "
        f"{out['whole']['median_s']:.3f} s, a kernel per operation "
        f"{out['per_kernel']['median_s']:.3f} s"
    )
    return out


def coba_sizes(config):
    """The (n, t1) pairs COBA runs at: the benchmark's, and the one of the per-neuron
    clocks where it differs."""
    sizes = [(config["n"], config["t1"])]
    small = tuple(config["neuron_clocks"])
    return sizes + ([small] if small != sizes[0] else [])


def coba(config, repeats):
    """neurosim's COBA (`brette_coba`, weights scaled by 4000 / n below 4000 neurons)
    with the default clocks (`clocks=None`: per-neuron clocks, `CobaLIF` having quiet
    times) at each size of `coba_sizes`, and on the network's clock at the size
    `config["neuron_clocks"]`: first call, warm calls, spikes, iterations."""
    seed, rows = config["seed"], []
    for n, t1 in coba_sizes(config):
        scale = 4000 / n
        net, y0 = ns.networks.brette_coba(seed, n=n, we=0.6 * scale, wi=6.7 * scale)
        max_spikes = max(20_000, int(n * t1 / 10))  # 100 Hz
        clocks = ["default"] + (
            ["network"] if [n, t1] == list(config["neuron_clocks"]) else []
        )
        for clock in clocks:
            sol, timing = timed_calls(
                lambda net=net, y0=y0, t1=t1, c=None if clock == "default" else clock: (
                    ns.simulate(
                        net, y0=y0, t1=t1, gradients=False, max_spikes=max_spikes, clocks=c
                    )
                ),
                repeats,
            )
            spikes = int(sol.num_spikes)
            rows.append(
                {
                    "seed": seed,
                    "n": n,
                    "t1": t1,
                    "clocks": clock,
                    "spikes": spikes,
                    "rate_hz": spikes / n / (t1 / 1000.0),
                    "iterations": int(sol.iterations),
                    "overflow": bool(sol.overflow),
                    **timing,
                }
            )
            log(
                f"neurosim COBA N = {n}, {t1:g} ms, {clock} clock: {spikes} spikes, "
                f"first call {timing['first_s']:.1f} s, warm {timing['median_s']:.2f} s"
            )
    return rows


IZHIKEVICH_2003_TOL = 1e-10  # rtol = atol of the float64 reference


def _dense_weights(network):
    """The one projection of `izhikevich_2003` as a dense [pre, post] matrix."""
    (conn,) = network.connections
    weight = np.asarray(conn.weight, np.float64)
    if conn.post_index is None:
        return weight
    dense = np.zeros((conn.n_pre, conn.n_post))
    rows = np.arange(conn.n_pre)[:, None].repeat(weight.shape[1], 1)
    index = np.asarray(conn.post_index)
    keep = index < conn.n_post
    np.add.at(dense, (rows[keep], index[keep]), weight[keep])
    return dense


def izhikevich_2003_reference(config):
    """The float64 child of the `izhikevich_2003` workload (x64 on): writes the network
    (as drawn in float64) to `izhikevich_2003_network.npz` for Brian2, simulates it at
    rtol = atol = 1e-10 at each delay, writes the spikes to
    `izhikevich_2003_reference.npz`; returns the figures of each run."""
    t1, spikes, rows = config["t1"], {}, []
    for delay in config["delays"]:
        net, y0 = ns.networks.izhikevich_2003(config["seed"], t1=t1, delay=delay)
        if not rows:
            (pop,) = net.populations.values()
            np.savez(
                OUT / "izhikevich_2003_network.npz",
                **{k: np.asarray(getattr(pop.neuron, k), np.float64) for k in "abcd"},
                weights=_dense_weights(net),
                noise=np.asarray(pop.current.values, np.float64),
                t1=t1,
            )
        start = time.perf_counter()
        sol = jax.block_until_ready(
            ns.simulate(
                net,
                y0=y0,
                t1=t1,
                gradients=False,
                max_spikes=int(100 * t1),  # 100 Hz over 1000 neurons
                rtol=IZHIKEVICH_2003_TOL,
                atol=IZHIKEVICH_2003_TOL,
            )
        )
        wall = time.perf_counter() - start
        times, neurons = sol.spikes()
        spikes[f"times_{delay}"], spikes[f"neurons_{delay}"] = times, neurons
        rows.append(
            {
                "delay_ms": delay,
                "rtol": IZHIKEVICH_2003_TOL,
                "spikes": int(sol.num_spikes),
                "rate_hz": int(sol.num_spikes) / 1000 / (t1 / 1000.0),
                "iterations": int(sol.iterations),
                "overflow": bool(sol.overflow),
                "first_s": wall,
            }
        )
    np.savez(OUT / "izhikevich_2003_reference.npz", **spikes)
    return rows


def izhikevich_2003_x64(config):
    """`izhikevich_2003_reference` in a fresh process (x64 must be on before any
    array)."""
    log("neurosim: izhikevich_2003 reference (float64)")
    command = [sys.executable, __file__, "--izhikevich-2003-x64", json.dumps(config)]
    return child_json(command)


def divergence(spikes, reference, t1):
    """How long `spikes` keeps every spike within 0.1 ms of `reference`
    (`first_divergence` of tests/_compare.py): the time (None: to the end), the
    spikes matched before it and what differs there."""
    found = first_divergence(spikes, reference, atol=0.1, t1=t1)
    return {
        "divergence_ms": None if found.agree else float(found.divergence),
        "matched": found.matched,
        "max_dt_ms": found.max_dt,
        "what": found.what,
    }


def izhikevich_2003(config, repeats, reference, brian2_runs):
    """neurosim's Izhikevich (2003) network in float32 at the default tolerances, at
    each delay: first and warm calls, spikes; each run's divergence from the float64
    reference (`reference`: the child's figures), and Brian2's (`brian2_runs`, whose
    spike lists are dropped once compared)."""
    if isinstance(reference, dict) and "error" in reference:
        raise RuntimeError(f"no float64 reference: {reference['error']}")
    t1 = config["t1"]
    with np.load(OUT / "izhikevich_2003_reference.npz") as data:
        ref = {k: np.asarray(data[k], np.float64) for k in data.files}

    def reference_of(delay):
        return ref[f"times_{delay}"], ref[f"neurons_{delay}"]

    runs = []
    for delay in config["delays"]:
        net, y0 = ns.networks.izhikevich_2003(config["seed"], t1=t1, delay=delay)
        sol, timing = timed_calls(
            lambda net=net, y0=y0: ns.simulate(
                net, y0=y0, t1=t1, gradients=False, max_spikes=int(100 * t1)
            ),
            repeats,
        )
        times, neurons = sol.spikes()
        spikes = int(sol.num_spikes)
        runs.append(
            {
                "delay_ms": delay,
                "spikes": spikes,
                "rate_hz": spikes / 1000 / (t1 / 1000.0),
                "iterations": int(sol.iterations),
                "overflow": bool(sol.overflow),
                **timing,
                **divergence(
                    (np.asarray(times, np.float64), neurons), reference_of(delay), t1
                ),
            }
        )
        log(
            f"neurosim Izhikevich (2003), delay {delay}: {spikes} spikes, warm "
            f"{timing['median_s']:.2f} s, divergence {runs[-1]['divergence_ms']} ms"
        )
    if isinstance(brian2_runs, list):
        for r in brian2_runs:
            delay = r["delay_ms"] or None
            found = divergence(
                (np.asarray(r.pop("times")), np.asarray(r.pop("neurons"))),
                reference_of(delay),
                t1,
            )
            r.update(found)
    return {"t1": t1, "seed": config["seed"], "reference": reference, "runs": runs}


def coba_accuracy(config, repeats, brian2_python):
    """`coba_accuracy.py` (its own processes: float64, Brian2): the COBA network at
    equal accuracy, every run against one float64 reference."""
    log("neurosim: COBA at equal accuracy (coba_accuracy.py)")
    command = [
        sys.executable,
        str(HERE / "coba_accuracy.py"),
        "--json",
        "--seed",
        str(config["seed"]),
        "--t1",
        str(config["t1"]),
        "--dts",
        *map(str, config["dts"]),
        "--repeats",
        str(repeats),
        "--brian2-python",
        brian2_python,
    ]
    return {"t1": config["t1"], "seed": config["seed"], "rows": child_json(command)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument(
        "--brian2-python",
        default=str(ROOT / ".venv-bench/bin/python"),
        help="the interpreter of the Brian2 environment",
    )
    parser.add_argument(
        "--jaxsnn-python",
        default=str(ROOT / ".venv-bench/bin/python"),
        help="the interpreter of the jaxsnn environment",
    )
    parser.add_argument("--repeats", type=int, default=3, help="warm calls per figure")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--lif-x64", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--izhikevich-2003-x64", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only",
        nargs="+",
        help="run only these workloads (e.g. cuba cuba_forms drift agreement accuracy)",
    )
    args = parser.parse_args()
    if args.lif_x64:  # the float64 child process of `lif_accuracy_x64`
        jax.config.update("jax_enable_x64", True)
        print(
            json.dumps(
                jsonable(
                    [lif_accuracy(True, args.repeats, exact) for exact in (None, False)]
                )
            )
        )
        return
    if args.izhikevich_2003_x64:  # the float64 child of `izhikevich_2003_x64`
        jax.config.update("jax_enable_x64", True)
        config = json.loads(args.izhikevich_2003_x64)
        print(json.dumps(jsonable(izhikevich_2003_reference(config))))
        return

    started, cpu_at_start = time.perf_counter(), cpu_seconds()
    load_at_start = load_average()
    time.sleep(1.0)
    busy = others_share(cpu_at_start, time.perf_counter() - started)
    log(f"other processes in the last second: {busy}; they slow every figure down")
    command = "python benchmarks/run_all.py" + (" --quick" if args.quick else "")
    config = {
        "mode": "quick" if args.quick else "full",
        "command": command,
        **(QUICK if args.quick else FULL),
    }
    cu, iz = config["cuba"], config["izhikevich"]
    OUT.mkdir(parents=True, exist_ok=True)
    params = izhikevich_params(iz["n"])
    params_path = OUT / "izhikevich_params.npz"
    np.savez(params_path, **params)

    co, iz03 = config["coba"], config["izhikevich_2003"]
    iz03_reference = None
    if not args.only or "izhikevich_2003" in args.only:
        # Before Brian2: it writes the network that Brian2 simulates.
        iz03_reference = attempt(lambda: izhikevich_2003_x64(iz03))
    sizes = coba_sizes(co)

    py = args.brian2_python
    b2 = {
        "cuba": (
            "cuba",
            "--n",
            cu["n"],
            "--t1",
            cu["t1"],
            "--seeds",
            *cu["seeds"],
            "--repeats",
            args.repeats,
        ),  # fmt: skip
        "lif": ("lif", "--repeats", args.repeats),
        "izhikevich": (
            "izhikevich",
            "--params",
            params_path,
            "--t1",
            iz["t1"],
            "--repeats",
            args.repeats,
        ),
        "coba": (
            "coba",
            "--n",
            *[n for n, _ in sizes],
            "--t1",
            *[t1 for _, t1 in sizes],
            "--seed",
            co["seed"],
        ),
        "izhikevich_2003": (
            "izhikevich_2003",
            "--network",
            OUT / "izhikevich_2003_network.npz",
            "--dts",
            *iz03["dts"],
            "--delays",
            *[d or 0.0 for d in iz03["delays"]],
            "--repeats",
            args.repeats,
        ),
    }
    if args.only:
        b2 = {name: a for name, a in b2.items() if name in args.only}
    if isinstance(iz03_reference, dict) and "error" in iz03_reference:
        b2.pop("izhikevich_2003", None)  # no network written for it
    b2 = {name: attempt(lambda a=a: brian2(py, *a)) for name, a in b2.items()}
    results = {"brian2": {name: out.get("result", out) for name, out in b2.items()}}
    versions = next((out["versions"] for out in b2.values() if "versions" in out), {})
    workloads = {
        "cuba": lambda: cuba(cu["seeds"], cu["n"], cu["t1"], args.repeats),
        "cuba_forms": lambda: [
            cuba_forms(cu["seeds"][0], cu["n"], cu["t1"], 2 * args.repeats + 1, delay)
            for delay in (None, 1.0)
        ],
        "lif": lambda: (
            [lif_accuracy(False, args.repeats, exact) for exact in (None, False)]
            + lif_accuracy_x64(args.repeats)
        ),
        "izhikevich": lambda: izhikevich(params, iz["t1"], args.repeats, iz["euler_dts"]),
        "per_event": lambda: [per_event_size(n, args.repeats) for n in config["per_event"]],
        "scaling": lambda: cuba_scaling_sweep(
            config["scaling"]["sizes"], config["scaling"]["t1"], py, log
        ),
        "gradients": lambda: gradients(args.repeats),
        "drift": lambda: [drift(k) for k in config["drift"]] + drift_x64(config["drift"]),
        "agreement": lambda: agreement_sweep(config["agreement_seeds"]),
        "accuracy": lambda: accuracy_cases(config["accuracy_quick"]),
        # Best of 5 warm calls at least, as the comparison asks.
        "yinyang": lambda: yinyang(args.jaxsnn_python, max(args.repeats, 5)),
        "coba": lambda: coba(co, co.get("warm_calls", args.repeats)),
        "izhikevich_2003": lambda: izhikevich_2003(
            iz03, args.repeats, iz03_reference, results["brian2"].get("izhikevich_2003")
        ),
        "coba_accuracy": lambda: coba_accuracy(config["coba_accuracy"], args.repeats, py),
    }
    if args.only:
        workloads = {k: v for k, v in workloads.items() if k in args.only}
    ours = {}
    for name, workload in workloads.items():
        log(f"neurosim: {name}")
        ours[name] = attempt(workload)

    config["total_s"] = time.perf_counter() - started
    others = others_share(cpu_at_start, config["total_s"])
    info = machine(versions, load_at_start, others)
    jaxsnn_run = ours.get("yinyang", {}).get("jaxsnn", {})
    for name in ("jaxsnn", "jax"):
        found = jaxsnn_run.get("versions", {}).get(name, "not run")
        info[f"{name} (jaxsnn environment)"] = found
    results.update(neurosim=ours, machine=info, config=config)
    results = jsonable(results)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    write_report(results, args.output)
    log(
        f"wrote {args.output} and {OUT / 'results.json'}, "
        f"{config['total_s'] / 60:.1f} min in all"
    )
    failed = [
        f"{side}/{name}"
        for side in ("brian2", "neurosim")
        for name, data in results[side].items()
        if failures(data, name)
    ]
    if failed:
        log(f"failed (see RESULTS.md): {', '.join(failed)}")


if __name__ == "__main__":
    main()
