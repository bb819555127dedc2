"""The Brian2 side of `make bench`: the reference workloads, timed in Brian2.

Runs under the benchmark environment `.venv-bench` (Brian2 with its default cython
target), never under neurosim's `.venv`. `benchmarks/run_all.py` launches it as a
subprocess and reads the JSON it prints on its last line of output; it can also be run
by hand:

    .venv-bench/bin/python benchmarks/brian2_reference.py cuba --n 4000 --seeds 0 1 2 3
    .venv-bench/bin/python benchmarks/brian2_reference.py cuba_fan_out --n 64000
    .venv-bench/bin/python benchmarks/brian2_reference.py lif
    .venv-bench/bin/python benchmarks/brian2_reference.py izhikevich --params PARAMS.npz
    .venv-bench/bin/python benchmarks/brian2_reference.py coba --n 4000 --t1 1000
    .venv-bench/bin/python benchmarks/brian2_reference.py coba_network \
        --network NETWORK.npz --dts 0.1 0.01 0.001
    .venv-bench/bin/python benchmarks/brian2_reference.py izhikevich_2003 \
        --network NETWORK.npz --delays 0 1

What each workload measures (times in ms, wall times in s):

- `cuba`: Brian2's CUBA example (Vogels & Abbott 2005): `n` LIF neurons (80%
  excitatory), p = 0.02, taum = 20 ms, taue = 5 ms, taui = 10 ms, Vt = -50 mV,
  Vr = -60 mV, El = -49 mV, 5 ms refractory period, we = 60*0.27/10 mV and
  wi = -20*4.5/10 mV (scaled by 4000/n below 4000 neurons), v0 uniform in [Vr, Vt],
  dt = 0.1 ms, `exact` integration. One warm-up run first (it fills the cython cache),
  then per seed: the construction time (groups and `connect`), the wall time of
  `run()`, Brian2's simulation-loop time (the sum of the code objects' times from
  `run(profile=True)`, code generation and compilation excluded), spikes and mean rate.
- `cuba_fan_out`: the same network with a fixed fan-out (every neuron projects to
  exactly `--fan-out` distinct targets, 80 by default, with the weights of n = 4000)
  at one size `--n`, alone in its process: a first run, then the timed run, and the
  process's peak resident memory.
- `lif`: one LIF, `dv/dt = (1.5 - v)/tau`, tau = 10 ms, threshold 1, reset 0, 1 s, at
  dt = 0.1 and 0.01 ms: spike times against the closed form k * 10 ln 3 ms (max
  absolute error over the spikes both have), spike count, wall time of `run()`.
- `izhikevich`: N Izhikevich neurons (`dv/dt = 0.04 v^2 + 5 v + 140 - u + I` per ms,
  `du/dt = a (b v - u)`, `v >= 30 -> v = c, u += d`) with per-neuron a, b, c, d read
  from an .npz file, I = 10, v0 = -65, u0 = b v0, 1 s, Euler (Brian2's choice for these
  equations) at dt = 0.1 and 0.01 ms: spike counts per neuron, wall time of `run()`.
- `coba`: the COBA network of Brette et al. (2007), benchmark 1, with the equations,
  parameters and initial conditions of `neurosim.networks.brette_coba`: `n` LIF neurons
  (80% excitatory), `taum dv/dt = El - v + ge (Ee - v) + gi (Ei - v)` with `ge`, `gi`
  in units of the leak conductance decaying with taue = 5 ms and taui = 10 ms,
  El = Vr = -60 mV, Vt = -50 mV, Ee = 0 mV, Ei = -80 mV, 5 ms refractory period
  (`v` held), connections with p = 0.02 (self-connections allowed) that add
  we = 0.6 to `ge` or wi = 6.7 to `gi` (both scaled by 4000/n below 4000 neurons),
  v0 uniform in [Vr, Vt], ge0 normal (4, 1.5) and gi0 normal (20, 12), clipped at 0.
  Euler at dt = 0.1 ms (Brian2's choice for these equations: `exact` does not apply to
  the products ge v, gi v). One warm-up run at the first size, then one run per
  `--n`/`--t1` pair: construction time, wall time of `run()`, the simulation loop (as
  for `cuba`), spikes and mean rate.
- `coba_network`: the same COBA network as drawn by neurosim (`run_all.py`), read
  from an .npz (`pre_exc`, `post_exc`, `pre_inh`, `post_inh`: one entry per synapse;
  `v0` in mV, `ge0`, `gi0`; `we`, `wi`; `t1`), Euler at each `--dts` value: one run
  that fills the cython cache, then per dt construction time, wall time of `run()`
  (`--repeats` runs, one below dt = 0.01 ms), spikes, mean rate, and the spike times
  and neurons of the first timed run.
- `izhikevich_2003`: the network of Izhikevich (2003) as built by
  `neurosim.networks.izhikevich_2003`, read from an .npz (`a`, `b`, `c`, `d` per
  neuron, `weights` [pre, post], the thalamic input `noise` with one row per ms, `t1`):
  the Izhikevich equations above with `I` the noise of the current ms (a
  `TimedArray`), all-to-all synapses `v_post += w`, at each `--delays` value (ms; 0:
  delivered in the step of the spike), Euler at dt = 0.1 and 0.01 ms. Per delay and dt:
  construction time, wall time of `run()` (one warm-up run, then `--repeats`), spikes,
  mean rate, and the spike times and neurons of the first timed run.
"""

import argparse
import json
import math
import statistics
import time

import brian2 as b2
import numpy as np
from _peak import peak_rss_mib
from brian2 import ms, mV, second

CLOSED_FORM_PERIOD = 10.0 * math.log(3.0)  # ms, the LIF of the `lif` workload


def _network_time(net):
    """Brian2's simulation-loop time: the sum of the code objects' profiled times, s."""
    return float(sum(float(t / second) for _, t in net.profiling_info))


def _timed_run(net, monitor, synapses, start, *, seed, n, t1, dt):
    """Runs a built network (`start`: when its construction began) with profiling;
    its figures as a dict."""
    setup = time.perf_counter() - start
    start = time.perf_counter()
    net.run(t1 * ms, profile=True)
    wall = time.perf_counter() - start
    spikes = int(monitor.num_spikes)
    return {
        "seed": seed,
        "n": n,
        "t1": t1,
        "dt": dt,
        "synapses": sum(len(s) for s in synapses),
        "setup_s": setup,
        "run_s": wall,
        "loop_s": _network_time(net),
        "spikes": spikes,
        "rate_hz": spikes / n / (t1 / 1000.0),
    }


def cuba_run(seed, n=4000, t1=1000.0, dt=0.1, p=0.02, fan_out=None):
    """One CUBA run; returns its figures as a dict. With `fan_out`, every neuron
    projects to exactly that many distinct targets (and the weights are not scaled)."""
    b2.start_scope()
    b2.defaultclock.dt = dt * ms
    b2.seed(seed)
    scale = 4000 / n if fan_out is None else 1.0
    n_exc = int(round(0.8 * n))
    namespace = {
        "taum": 20 * ms,
        "taue": 5 * ms,
        "taui": 10 * ms,
        "Vt": -50 * mV,
        "Vr": -60 * mV,
        "El": -49 * mV,
        "we": 60 * 0.27 / 10 * mV * scale,
        "wi": -20 * 4.5 / 10 * mV * scale,
    }
    eqs = """
    dv/dt  = (ge + gi - (v - El)) / taum : volt (unless refractory)
    dge/dt = -ge / taue : volt
    dgi/dt = -gi / taui : volt
    """
    start = time.perf_counter()
    group = b2.NeuronGroup(
        n,
        eqs,
        threshold="v > Vt",
        reset="v = Vr",
        refractory=5 * ms,
        method="exact",
        namespace=namespace,
        name="cuba",
    )
    group.v = "Vr + rand() * (Vt - Vr)"
    if fan_out is None:
        exc = b2.Synapses(
            group, group, on_pre="ge += we", namespace=namespace, name="cuba_exc"
        )
        exc.connect(f"i < {n_exc}", p=p)
        inh = b2.Synapses(
            group, group, on_pre="gi += wi", namespace=namespace, name="cuba_inh"
        )
        inh.connect(f"i >= {n_exc}", p=p)
    else:
        targets = f"k for k in sample(N_post, size={fan_out})"
        exc = b2.Synapses(
            group[:n_exc], group, on_pre="ge += we", namespace=namespace, name="cuba_exc"
        )
        exc.connect(j=targets)
        inh = b2.Synapses(
            group[n_exc:], group, on_pre="gi += wi", namespace=namespace, name="cuba_inh"
        )
        inh.connect(j=targets)
    monitor = b2.SpikeMonitor(group, name="cuba_spikes")
    net = b2.Network(group, exc, inh, monitor)
    return _timed_run(net, monitor, (exc, inh), start, seed=seed, n=n, t1=t1, dt=dt)


def cuba(seeds, n, t1, repeats=1):
    """A warm-up run (fills the cython cache; not reported), then `repeats` runs per
    seed (each builds its network again): the last run's figures, with the medians of
    the runs' `run()` and loop times (all of them in `run_s_all`, `loop_s_all`)."""
    warmup = cuba_run(seeds[0], n=n, t1=t1)
    runs = []
    for seed in seeds:
        repeated = [cuba_run(seed, n=n, t1=t1) for _ in range(repeats)]
        run = dict(repeated[-1])
        for key in ("run_s", "loop_s"):
            run[f"{key}_all"] = [r[key] for r in repeated]
            run[key] = statistics.median(run[f"{key}_all"])
        runs.append(run)
    return {"warmup": warmup, "runs": runs}


def cuba_fan_out(n, fan_out, t1, seed=0):
    """CUBA with a fixed fan-out at one size, alone in this process (its peak memory is
    this size's): a first run (code generation, cython cache), then the timed one."""
    first = cuba_run(seed, n=n, t1=t1, fan_out=fan_out)
    run = cuba_run(seed, n=n, t1=t1, fan_out=fan_out)
    run["first_run_s"] = first["run_s"]
    run["peak_rss_mib"] = peak_rss_mib()
    return run


def lif_run(dt, t1=1000.0):
    """The single LIF against the closed form at step `dt` (ms)."""
    b2.start_scope()
    b2.defaultclock.dt = dt * ms
    group = b2.NeuronGroup(
        1,
        "dv/dt = (1.5 - v) / tau : 1",
        threshold="v > 1",
        reset="v = 0",
        method="exact",
        namespace={"tau": 10 * ms},
        name="lif",
    )
    monitor = b2.SpikeMonitor(group, name="lif_spikes")
    net = b2.Network(group, monitor)
    start = time.perf_counter()
    net.run(t1 * ms)
    wall = time.perf_counter() - start
    times = np.asarray(monitor.t / ms)
    exact = CLOSED_FORM_PERIOD * np.arange(1, int(t1 / CLOSED_FORM_PERIOD) + 1)
    k = min(len(times), len(exact))
    return {
        "dt": dt,
        "spikes": len(times),
        "expected_spikes": len(exact),
        "max_abs_error_ms": float(np.max(np.abs(times[:k] - exact[:k]))) if k else None,
        "first_spike_ms": float(times[0]) if len(times) else None,
        "run_s": wall,
    }


def repeated(run, repeats):
    """One run to warm the cython cache, then `repeats` timed runs: the first run's
    figures with the wall times of all of them (`warm_s`) and their median."""
    run()
    runs = [run() for _ in range(repeats)]
    times = [r.pop("run_s") for r in runs]
    return {**runs[0], "warm_s": times, "median_s": statistics.median(times)}


def lif(dts, repeats):
    """The single LIF at each dt."""
    return [repeated(lambda dt=dt: lif_run(dt), repeats) for dt in dts]


def izhikevich_run(params, dt, t1=1000.0, current=10.0):
    """The Izhikevich sweep at step `dt` (ms); parameters one value per neuron."""
    b2.start_scope()
    b2.defaultclock.dt = dt * ms
    n = len(params["a"])
    eqs = """
    dv/dt = (0.04 * v**2 + 5 * v + 140 - u + I) / ms : 1
    du/dt = a * (b * v - u) / ms : 1
    a : 1
    b : 1
    c : 1
    d : 1
    I : 1
    """
    group = b2.NeuronGroup(
        n,
        eqs,
        threshold="v >= 30",
        reset="v = c; u += d",
        method="euler",
        name="izhikevich",
    )
    for name in "abcd":
        setattr(group, name, params[name])
    group.I = current
    group.v = -65.0
    group.u = params["b"] * -65.0
    monitor = b2.SpikeMonitor(group, record=False, name="izhikevich_spikes")
    net = b2.Network(group, monitor)
    start = time.perf_counter()
    net.run(t1 * ms)
    wall = time.perf_counter() - start
    return {"dt": dt, "n": n, "run_s": wall, "counts": [int(c) for c in monitor.count]}


def izhikevich(path, dts, repeats, t1):
    """The sweep at each dt, parameters read from the .npz at `path`."""
    with np.load(path) as data:
        params = {name: np.asarray(data[name], float) for name in "abcd"}
    return [repeated(lambda dt=dt: izhikevich_run(params, dt, t1), repeats) for dt in dts]


COBA_EQUATIONS = """
dv/dt  = (El - v + ge * (Ee - v) + gi * (Ei - v)) / taum : volt (unless refractory)
dge/dt = -ge / taue : 1
dgi/dt = -gi / taui : 1
"""


def _coba_namespace(we, wi):
    """The COBA network's constants (`neurosim.networks.brette_coba`'s), with the
    conductance jumps `we` and `wi` in units of the leak conductance."""
    return {
        "taum": 20 * ms,
        "taue": 5 * ms,
        "taui": 10 * ms,
        "El": -60 * mV,
        "Vt": -50 * mV,
        "Vr": -60 * mV,
        "Ee": 0 * mV,
        "Ei": -80 * mV,
        "we": we,
        "wi": wi,
    }


def _coba_group(n, namespace):
    """The COBA network's `n` neurons: Euler (Brian2's choice for these equations), `v`
    held while refractory."""
    return b2.NeuronGroup(
        n,
        COBA_EQUATIONS,
        threshold="v > Vt",
        reset="v = Vr",
        refractory=5 * ms,
        method="euler",
        namespace=namespace,
        name="coba",
    )


def coba_run(seed, n=4000, t1=1000.0, dt=0.1, p=0.02):
    """One COBA run (`neurosim.networks.brette_coba`'s network); its figures."""
    b2.start_scope()
    b2.defaultclock.dt = dt * ms
    b2.seed(seed)
    scale = 4000 / n
    n_exc = int(round(0.8 * n))
    namespace = _coba_namespace(0.6 * scale, 6.7 * scale)
    start = time.perf_counter()
    group = _coba_group(n, namespace)
    group.v = "Vr + rand() * (Vt - Vr)"
    group.ge = "clip(4 + 1.5 * randn(), 0, inf)"
    group.gi = "clip(20 + 12 * randn(), 0, inf)"
    exc = b2.Synapses(group, group, on_pre="ge += we", namespace=namespace, name="coba_exc")
    exc.connect(f"i < {n_exc}", p=p)
    inh = b2.Synapses(group, group, on_pre="gi += wi", namespace=namespace, name="coba_inh")
    inh.connect(f"i >= {n_exc}", p=p)
    monitor = b2.SpikeMonitor(group, record=False, name="coba_spikes")
    net = b2.Network(group, exc, inh, monitor)
    return _timed_run(net, monitor, (exc, inh), start, seed=seed, n=n, t1=t1, dt=dt)


def coba(sizes, seed=0):
    """A warm-up run at the first size (fills the cython cache; not reported), then
    one run per (n, t1) in `sizes`."""
    warmup = coba_run(seed, *sizes[0])
    return {"warmup": warmup, "runs": [coba_run(seed, n, t1) for n, t1 in sizes]}


def _recorded_run(net, monitor, start, network, **figures):
    """Runs a built network (`start`: when its construction began) for the `t1` of
    `network` (the .npz's arrays); its figures, spike times and neurons as a dict."""
    setup = time.perf_counter() - start
    t1 = float(network["t1"])
    start = time.perf_counter()
    net.run(t1 * ms)
    wall = time.perf_counter() - start
    spikes, n = int(monitor.num_spikes), len(monitor.source)
    return {
        **figures,
        "n": n,
        "t1": t1,
        "setup_s": setup,
        "run_s": wall,
        "spikes": spikes,
        "rate_hz": spikes / n / (t1 / 1000.0),
        "times": [float(x) for x in np.asarray(monitor.t / ms)],
        "neurons": [int(k) for k in np.asarray(monitor.i)],
    }


def coba_network_run(network, dt):
    """The COBA network of the .npz (`coba_network`) at step `dt` (ms), Euler: its
    spike times and neurons, and the wall time of `run()`."""
    b2.start_scope()
    b2.defaultclock.dt = dt * ms
    n = len(network["v0"])
    namespace = _coba_namespace(float(network["we"]), float(network["wi"]))
    start = time.perf_counter()
    group = _coba_group(n, namespace)
    group.v = network["v0"] * mV
    group.ge = network["ge0"]
    group.gi = network["gi0"]
    projections = []
    for kind, target, weight in (("exc", "ge", "we"), ("inh", "gi", "wi")):
        synapses = b2.Synapses(
            group,
            group,
            on_pre=f"{target} += {weight}",
            namespace=namespace,
            name=f"coba_{kind}",
        )
        synapses.connect(
            i=network[f"pre_{kind}"].astype(int), j=network[f"post_{kind}"].astype(int)
        )
        projections.append(synapses)
    monitor = b2.SpikeMonitor(group, name="coba_spikes")
    net = b2.Network(group, *projections, monitor)
    return _recorded_run(
        net, monitor, start, network, dt=dt, synapses=sum(len(s) for s in projections)
    )


def coba_network(path, dts, repeats):
    """The COBA network of the .npz at `path` at each dt: one run at the first dt that
    fills the cython cache (the code is the same at every dt), then `repeats` timed
    runs per dt, one only at steps below 0.01 ms (minutes each). Each dt's figures are
    its first timed run's, with the wall times of all (`warm_s`) and their median."""
    with np.load(path) as data:
        network = {name: np.asarray(data[name]) for name in data.files}
    coba_network_run(network, dts[0])
    results = []
    for dt in dts:
        runs = [coba_network_run(network, dt) for _ in range(repeats if dt >= 0.01 else 1)]
        times = [r.pop("run_s") for r in runs]
        results.append({**runs[0], "warm_s": times, "median_s": statistics.median(times)})
    return results


def izhikevich_2003_run(network, dt, delay):
    """The Izhikevich (2003) network of the .npz at step `dt` (ms) with every
    connection delayed by `delay` ms (0: delivered in the step of the spike)."""
    b2.start_scope()
    b2.defaultclock.dt = dt * ms
    n = len(network["a"])
    start = time.perf_counter()
    noise = b2.TimedArray(network["noise"], dt=1 * ms, name="thalamic")
    eqs = """
    dv/dt = (0.04 * v**2 + 5 * v + 140 - u + I) / ms : 1
    du/dt = a * (b * v - u) / ms : 1
    I = thalamic(t, i) : 1
    a : 1 (constant)
    b : 1 (constant)
    c : 1 (constant)
    d : 1 (constant)
    """
    group = b2.NeuronGroup(
        n,
        eqs,
        threshold="v >= 30",
        reset="v = c; u += d",
        method="euler",
        namespace={"thalamic": noise},
        name="izhikevich_2003",
    )
    for name in "abcd":
        setattr(group, name, network[name])
    group.v = -65.0
    group.u = network["b"] * -65.0
    synapses = b2.Synapses(
        group, group, "w : 1 (constant)", on_pre="v_post += w", name="izhikevich_syn"
    )
    pre, post = np.indices(network["weights"].shape)
    synapses.connect(i=pre.ravel(), j=post.ravel())
    synapses.w = network["weights"].ravel()
    if delay:
        synapses.delay = delay * ms
    monitor = b2.SpikeMonitor(group, name="izhikevich_2003_spikes")
    net = b2.Network(group, synapses, monitor)
    return _recorded_run(net, monitor, start, network, dt=dt, delay_ms=delay)


def izhikevich_2003(path, dts, delays, repeats):
    """The Izhikevich (2003) network of the .npz at `path`, at each delay and dt."""
    with np.load(path) as data:
        network = {name: np.asarray(data[name], float) for name in data.files}
    return [
        repeated(
            lambda dt=dt, delay=delay: izhikevich_2003_run(network, dt, delay), repeats
        )
        for delay in delays
        for dt in dts
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="workload", required=True)
    p_cuba = sub.add_parser("cuba")
    p_cuba.add_argument("--n", type=int, default=4000)
    p_cuba.add_argument("--t1", type=float, default=1000.0)
    p_cuba.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p_cuba.add_argument("--repeats", type=int, default=1)
    p_fan = sub.add_parser("cuba_fan_out")
    p_fan.add_argument("--n", type=int, default=4000)
    p_fan.add_argument("--fan-out", type=int, default=80)
    p_fan.add_argument("--t1", type=float, default=1000.0)
    p_lif = sub.add_parser("lif")
    p_lif.add_argument("--dts", type=float, nargs="+", default=[0.1, 0.01])
    p_lif.add_argument("--repeats", type=int, default=3)
    p_izh = sub.add_parser("izhikevich")
    p_izh.add_argument("--params", required=True, help=".npz with arrays a, b, c, d")
    p_izh.add_argument("--t1", type=float, default=1000.0)
    p_izh.add_argument("--dts", type=float, nargs="+", default=[0.1, 0.01])
    p_izh.add_argument("--repeats", type=int, default=3)
    p_coba = sub.add_parser("coba")
    p_coba.add_argument("--n", type=int, nargs="+", default=[4000])
    p_coba.add_argument("--t1", type=float, nargs="+", default=[1000.0])
    p_coba.add_argument("--seed", type=int, default=0)
    p_cobn = sub.add_parser("coba_network")
    p_cobn.add_argument("--network", required=True, help=".npz of the network")
    p_cobn.add_argument("--dts", type=float, nargs="+", default=[0.1, 0.01, 0.001])
    p_cobn.add_argument("--repeats", type=int, default=3)
    p_iz03 = sub.add_parser("izhikevich_2003")
    p_iz03.add_argument("--network", required=True, help=".npz of the network")
    p_iz03.add_argument("--dts", type=float, nargs="+", default=[0.1, 0.01])
    p_iz03.add_argument("--delays", type=float, nargs="+", default=[0.0, 1.0])
    p_iz03.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    b2.prefs.codegen.target = "cython"  # Brian2's default, stated
    if args.workload == "cuba":
        result = cuba(args.seeds, args.n, args.t1, args.repeats)
    elif args.workload == "cuba_fan_out":
        result = cuba_fan_out(args.n, args.fan_out, args.t1)
    elif args.workload == "coba":
        result = coba(list(zip(args.n, args.t1, strict=True)), args.seed)
    elif args.workload == "coba_network":
        result = coba_network(args.network, args.dts, args.repeats)
    elif args.workload == "izhikevich_2003":
        result = izhikevich_2003(args.network, args.dts, args.delays, args.repeats)
    elif args.workload == "lif":
        result = lif(args.dts, args.repeats)
    else:
        result = izhikevich(args.params, args.dts, args.repeats, args.t1)
    versions = {"brian2": b2.__version__, "numpy": np.__version__}
    try:
        import Cython

        versions["cython"] = Cython.__version__
    except ImportError:
        pass
    print(json.dumps({"workload": args.workload, "versions": versions, "result": result}))


if __name__ == "__main__":
    main()
