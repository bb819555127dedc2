"""Writes `benchmarks/RESULTS.md` from the figures that `run_all.py` measured.

`run_all.py` calls `write_report` at the end of a run and also saves the raw figures
to `out/bench/results.json`; to rewrite the Markdown from that file without measuring
again:

    .venv/bin/python benchmarks/bench_report.py [RESULTS_JSON] [RESULTS_MD]

(defaults `out/bench/results.json` and `benchmarks/RESULTS.md`).

Only formatting happens here: medians of the warm calls, ratios, and the goals of the
benchmark issue beside the measured values, each marked met or not met. Nothing is
asserted.
"""

import json
import statistics
import sys
from pathlib import Path

from coba_accuracy import table as coba_accuracy_table

HERE = Path(__file__).resolve().parent

GOALS = {
    "cuba_run": "CUBA faster than Brian2's warm `run()` (about 1.6 s in the issue)",
    "cuba_loop": "CUBA faster than Brian2's simulation loop (about 0.25 s in the issue)",
    "per_event": "cost per event at least 3x lower than the plain loop, N = 1000, 4000",
    "lif_f64": "LIF spike-time error below 1e-6 ms in float64",
    "gradients": "value and gradient at most 5x the forward run",
    "eventprop": "value and gradient at most 2x the forward run (the learning issue; "
    "`gradients='eventprop'`)",
    "compile": "CUBA compile time below 10 s",
    "yinyang_forward": "Yin-Yang 5-120-3, batch 256: forward at or below jaxsnn's",
    "yinyang_grad": "Yin-Yang: value and grad at or below jaxsnn's EventProp",
    "yinyang_compile": "Yin-Yang: compile of value and grad at most 10 s",
    "sweep": "1024 Izhikevich as one population: at most the `vmap` time of the same "
    "neurons, and below Brian2 at dt = 0.01 ms",
    "coba": "COBA 4000, 1 s: at most 5x Brian2's warm `run()` at dt 0.1 ms",
    "izhikevich_2003": "Izhikevich (2003) with 1 ms delays: below Brian2 at dt 0.01 ms",
}


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def f(x, digits=3):
    return f"{x:.{digits}f}"


def warm(timed, digits=3):
    """A timed figure: the median of the warm calls, their count in brackets."""
    return f"{f(timed['median_s'], digits)} ({len(timed['warm_s'])})"


def verdict(ok):
    return "met" if ok else "**not met**"


def median(values):
    return statistics.median(values)


# What a section raises when a workload it reads failed and left {"error": ...} instead.
MISSING = (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError)


def failures(data, where):
    """The error messages recorded anywhere in one workload's figures."""
    if isinstance(data, dict):
        if "error" in data:
            return [f"{where}: {data['error']}"]
        return [
            e for key, value in data.items() for e in failures(value, f"{where}, {key}")
        ]
    if isinstance(data, list):
        return [e for value in data for e in failures(value, where)]
    return []


def errors(results, needs):
    """The failures of the workloads named 'side/name' in `needs`, as one line."""
    found = []
    for need in needs:
        side, name = need.split("/")
        found += failures(results.get(side, {}).get(name, {"error": "not run"}), need)
    return "; ".join(found) or "no figures"


def cuba_medians(results, key="cuba"):
    runs = results["brian2"]["cuba"]["runs"]
    b_run = median([r["run_s"] for r in runs])
    b_loop = median([r["loop_s"] for r in runs])
    ours = median([t for r in results["neurosim"][key] for t in r["warm_s"]])
    return b_run, b_loop, ours


def per_event_speedup(row, key="neurosim_grad_True"):
    """The plain loop's cost per event over neurosim's (above 1: neurosim is cheaper)."""
    ours, plain = row[key], row["plain"]
    return (plain["median_s"] / max(plain["spikes"], 1)) / (
        ours["median_s"] / max(ours["spikes"], 1)
    )


def gradient_ratio(grads):
    forward = grads["forward, gradients=True"]["median_s"]
    return grads["value_and_grad"]["median_s"] / forward


def header(results):
    config = results["config"]
    return [
        "# Benchmark results\n",
        f"Written by `benchmarks/run_all.py` ({config['mode']} run, "
        f"`{config['command']}`, {config['total_s'] / 60:.1f} min in all); regenerate "
        "with `make bench`. Wall times in s, simulated and spike times in ms. A timed "
        "figure is the median of the warm calls, their count in brackets; a neurosim "
        "first call includes JAX compilation. Ratios neurosim / X below 1 mean neurosim "
        "is faster. Numbers are measured, never asserted.\n",
        "## Machine\n",
        table(["", ""], list(results["machine"].items())),
    ]


def goal_cuba_run(results):
    b_run, _, ours = cuba_medians(results)
    return (
        f"neurosim {f(ours, 2)} s, Brian2 `run()` {f(b_run, 2)} s "
        f"(ratio {f(ours / b_run, 2)})"
    ), ours < b_run


def goal_cuba_loop(results):
    _, b_loop, ours = cuba_medians(results)
    return (
        f"neurosim {f(ours, 2)} s, Brian2 loop {f(b_loop)} s (ratio {f(ours / b_loop, 2)})"
    ), ours < b_loop


def goal_per_event(results):
    big = [r for r in results["neurosim"]["per_event"] if r["n"] >= 1000]
    if not big:
        raise KeyError("no size of 1000 or more")
    measured = "; ".join(
        f"N = {r['n']}: {f(per_event_speedup(r), 2)}x "
        f"({f(per_event_speedup(r, 'neurosim_grad_False'), 2)}x with gradients=False)"
        for r in big
    )
    return f"lower by {measured}", all(per_event_speedup(r) >= 3 for r in big)


def goal_lif_f64(results):
    f64 = [r for r in results["neurosim"]["lif"] if r["dtype"] == "float64"][-1]
    return f"{f64['max_abs_error_ms']:.2e} ms", f64["max_abs_error_ms"] < 1e-6


def goal_gradients(results):
    ratio = gradient_ratio(results["neurosim"]["gradients"])
    return f"{f(ratio, 1)}x the forward run (gradients=True)", ratio <= 5


def goal_eventprop(results):
    grads = results["neurosim"]["gradients"]
    key = "value_and_grad, gradients='eventprop'"
    if "median_s" not in grads.get(key, {}):
        return "not measured", False
    ratio = grads[key]["median_s"] / grads["forward, gradients=False"]["median_s"]
    return f"{f(ratio, 2)}x the forward run (gradients=False)", ratio <= 2


def goal_compile(results):
    first = results["neurosim"]["cuba"][0]
    compile_s = first["lower_s"] + first["xla_compile_s"]
    return (
        f"{f(compile_s, 1)} s (tracing and lowering {f(first['lower_s'], 1)} s, XLA "
        f"{f(first['xla_compile_s'], 1)} s); first call {f(first['first_s'], 1)} s "
        "in all"
    ), compile_s < 10


def yinyang_pair(results, key):
    """neurosim's `exact="layered"` figure and jaxsnn's EventProp one for `key`
    ("forward" or "value_and_grad")."""
    y = results["neurosim"]["yinyang"]
    theirs = {r["backprop_method"]: r for r in y["jaxsnn"]["result"]}["eventprop"][key]
    return y["neurosim"][f"{key}_layered"], theirs


def goal_yinyang(key):
    def check(results):
        ours, theirs = yinyang_pair(results, key)
        ratio = ours["best_s"] / theirs["best_s"]
        return (
            f'neurosim `exact="layered"` {f(ours["best_s"])} s, jaxsnn '
            f"{'EventProp ' if key != 'forward' else ''}{f(theirs['best_s'])} s "
            f"(ratio {f(ratio, 2)})"
        ), ratio <= 1

    return check


def goal_yinyang_compile(results):
    ours = results["neurosim"]["yinyang"]["neurosim"]["value_and_grad_layered"]
    compile_s = ours["first_s"] - ours["best_s"]
    return (
        f'{f(compile_s, 1)} s (`exact="layered"`, first call {f(ours["first_s"], 1)} s '
        "minus a warm call)"
    ), compile_s <= 10


def goal_sweep(results):
    runs = results["neurosim"]["izhikevich"]
    ours = runs["exact, one population, per-neuron clocks"]["median_s"]
    lanes = runs["exact, vmap"]["median_s"]
    fine = min(results["brian2"]["izhikevich"], key=lambda r: r["dt"])
    return (
        f"neurosim {f(ours)} s, `vmap` {f(lanes)} s (ratio {f(ours / lanes, 2)}), "
        f"Brian2 dt = {fine['dt']:g} ms {f(fine['median_s'])} s "
        f"(ratio {f(ours / fine['median_s'], 2)})"
    ), ours <= lanes and ours < fine["median_s"]


def coba_pair(results):
    """neurosim's row with the default clocks at the benchmark's size and Brian2's run
    there."""
    config = results["config"]["coba"]
    size = (config["n"], config["t1"])
    ours = next(
        r
        for r in results["neurosim"]["coba"]
        if (r["n"], r["t1"]) == size and r["clocks"] == "default"
    )
    theirs = next(r for r in results["brian2"]["coba"]["runs"] if (r["n"], r["t1"]) == size)
    return ours, theirs


def goal_coba(results):
    ours, theirs = coba_pair(results)
    ratio = ours["median_s"] / theirs["run_s"]
    return (
        f"N = {ours['n']}, {ours['t1']:g} ms: neurosim {f(ours['median_s'], 2)} s, "
        f"Brian2 `run()` {f(theirs['run_s'], 2)} s (ratio {f(ratio, 2)})"
    ), ratio <= 5


def izhikevich_2003_pair(results, delay=1.0):
    """neurosim's run at `delay` and Brian2's at the same delay and its finest dt."""
    ours = next(
        r for r in results["neurosim"]["izhikevich_2003"]["runs"] if r["delay_ms"] == delay
    )
    theirs = min(
        (r for r in results["brian2"]["izhikevich_2003"] if r["delay_ms"] == delay),
        key=lambda r: r["dt"],
    )
    return ours, theirs


def goal_izhikevich_2003(results):
    ours, theirs = izhikevich_2003_pair(results)
    ratio = ours["median_s"] / theirs["median_s"]
    return (
        f"{results['neurosim']['izhikevich_2003']['t1']:g} ms: neurosim "
        f"{f(ours['median_s'], 2)} s, Brian2 dt = {theirs['dt']:g} ms "
        f"{f(theirs['median_s'], 2)} s (ratio {f(ratio, 2)})"
    ), ratio < 1


GOAL_CHECKS = [  # (goal, check, the workloads it reads)
    ("cuba_run", goal_cuba_run, ("brian2/cuba", "neurosim/cuba")),
    ("cuba_loop", goal_cuba_loop, ("brian2/cuba", "neurosim/cuba")),
    ("per_event", goal_per_event, ("neurosim/per_event",)),
    ("lif_f64", goal_lif_f64, ("neurosim/lif",)),
    ("gradients", goal_gradients, ("neurosim/gradients",)),
    ("eventprop", goal_eventprop, ("neurosim/gradients",)),
    ("compile", goal_compile, ("neurosim/cuba",)),
    ("yinyang_forward", goal_yinyang("forward"), ("neurosim/yinyang",)),
    ("yinyang_grad", goal_yinyang("value_and_grad"), ("neurosim/yinyang",)),
    ("yinyang_compile", goal_yinyang_compile, ("neurosim/yinyang",)),
    ("sweep", goal_sweep, ("brian2/izhikevich", "neurosim/izhikevich")),
    ("coba", goal_coba, ("brian2/coba", "neurosim/coba")),
    (
        "izhikevich_2003",
        goal_izhikevich_2003,
        ("brian2/izhikevich_2003", "neurosim/izhikevich_2003"),
    ),
]


def goals(results):
    rows = []
    for goal, check, needs in GOAL_CHECKS:
        try:
            measured, ok = check(results)
            rows.append([GOALS[goal], measured, verdict(ok)])
        except MISSING:
            rows.append(
                [GOALS[goal], f"not measured: {errors(results, needs)}", "**not measured**"]
            )
    config = results["config"]
    cuba, coba = config["cuba"], config.get("coba", {})
    note = ""
    if cuba["n"] != 4000 or cuba["t1"] != 1000.0 or coba.get("n", 4000) != 4000:
        note = (
            "This quick run uses smaller networks than the goals name; run `make bench` "
            "for the full-size figures.\n"
        )
    goals_table = table(["goal", "measured", "status"], rows)
    return ["## Goals of the benchmark issue\n", goals_table, note]


def cuba(results):
    config = results["config"]["cuba"]
    b2, ours = results["brian2"]["cuba"], results["neurosim"]["cuba"]
    b_run, b_loop, ours_median = cuba_medians(results)
    rows = [
        [
            b["seed"],
            b["spikes"],
            f(b["rate_hz"], 2),
            f(b["run_s"]),
            f(b["loop_s"]),
            r["spikes"],
            f(r["rate_hz"], 2),
            f(r["first_s"], 1),
            warm(r, 2),
        ]
        for b, r in zip(b2["runs"], ours, strict=True)
    ]
    return [
        f"## 1. CUBA: {config['n']} neurons, {config['t1']:g} ms\n",
        "Brian2: cython target, dt = 0.1 ms, `exact` integration, timed after one warm-up "
        "run; `run()` is the wall time of the call, profiling on, and the loop the sum of "
        "the profiled code objects (`run(profile=True)`, code generation excluded). "
        "neurosim: `simulate(net, t1, y0, max_spikes=400_000, gradients=False)`, spike "
        "times exact. Each seed runs the same number of times on both sides (Brian2 "
        "builds its network again for each run); its figures are their medians. "
        "The two draw connections and initial voltages with different generators, so "
        "their counts agree in distribution, not spike for spike.\n",
        table(
            [
                "seed",
                "Brian2 spikes",
                "Brian2 Hz",
                "Brian2 run() s",
                "Brian2 loop s",
                "neurosim spikes",
                "neurosim Hz",
                "neurosim first call s",
                "neurosim warm s",
            ],
            rows,
        ),
        table(
            [
                "medians",
                "Brian2 run() s",
                "Brian2 loop s",
                "neurosim warm s",
                "neurosim / Brian2 run()",
                "neurosim / Brian2 loop",
            ],
            [
                [
                    "all seeds",
                    f(b_run),
                    f(b_loop),
                    f(ours_median, 2),
                    f(ours_median / b_run, 1),
                    f(ours_median / b_loop, 1),
                ]
            ],
        ),
        *cuba_forms_rows(results),
        f"Brian2's warm-up run (which fills the cython cache where it is empty) took "
        f"{f(b2['warmup']['setup_s'], 1)} s to build and {f(b2['warmup']['run_s'], 1)} s "
        "in `run()`. neurosim's event loop "
        f"ran {ours[0]['iterations']} iterations for seed {ours[0]['seed']}.\n",
    ]


def cuba_forms_rows(results):
    forms = results["neurosim"].get("cuba_forms")
    if not isinstance(forms, list) or failures(forms, "cuba_forms"):
        return [
            "The event loop as one compiled function against a kernel per operation: "
            f"not measured ({errors(results, ('neurosim/cuba_forms',))}).\n"
        ]
    rows = []
    for r in forms:
        whole, per_kernel = r["whole"], r["per_kernel"]
        per_iteration = [1e6 * x["median_s"] / r["iterations"] for x in (whole, per_kernel)]
        rows.append(
            [
                "none" if r["delay_ms"] is None else f"{r['delay_ms']:g} ms",
                r["iterations"],
                f"{warm(whole)} (best {f(whole['best_s'])})",
                f"{warm(per_kernel)} (best {f(per_kernel['best_s'])})",
                f(whole["median_s"] / per_kernel["median_s"], 2),
                " / ".join(f(x, 1) for x in per_iteration),
                f"{whole['spikes']} / {per_kernel['spikes']}",
            ]
        )
    return [
        f"What compiling the event loop into one function buys (seed {forms[0]['seed']}, "
        "the two forms compiled in one process and called in turn; `neurosim._cpu`), "
        "without and with a synaptic delay on every connection:\n",
        table(
            [
                "delay",
                "iterations",
                "one function s",
                "a kernel per operation s",
                "ratio of medians",
                "us per iteration",
                "spikes",
            ],
            rows,
        ),
    ]


def compile_time(results):
    rows = [
        [
            r["seed"],
            f(r["lower_s"], 1),
            f(r["xla_compile_s"], 1),
            f(r["lower_s"] + r["xla_compile_s"], 1),
            f(r["first_s"], 1),
            f(r["median_s"], 1),
            f(r["first_minus_warm_s"], 1),
        ]
        for r in results["neurosim"]["cuba"]
    ]
    return [
        "## 2. Compile time: neurosim's CUBA\n",
        "Measured ahead of time (`eqx.filter_jit(...).lower(...)`, then `.compile()`), "
        "apart from the runs; first minus warm is the same figure taken from the calls, "
        "as noisy as the run time is.\n",
        table(
            [
                "seed",
                "tracing and lowering s",
                "XLA compile s",
                "compile s",
                "first call s",
                "warm s",
                "first minus warm s",
            ],
            rows,
        ),
    ]


def lif(results):
    rows = [
        [
            "Brian2",
            f"exact, dt = {r['dt']} ms",
            r["spikes"],
            f"{r['max_abs_error_ms']:.2e}",
            f(r["first_spike_ms"], 6),
            warm(r),
        ]
        for r in results["brian2"]["lif"]
    ]
    rows += [
        [
            "neurosim",
            f"{r.get('method', 'Tsit5')}, {r['dtype']}"
            + (
                "" if r.get("method") == "closed form" else f", rtol = atol = {r['rtol']:g}"
            ),
            r["spikes"],
            f"{r['max_abs_error_ms']:.2e}",
            f(r["first_spike_ms"], 6),
            warm(r),
        ]
        for r in results["neurosim"]["lif"]
    ]
    return [
        "## 3. Accuracy: one LIF against k * 10 ln 3 ms, 1 s\n",
        "tau = 10 ms, threshold 1, reset 0, constant input 1.5: 91 spikes in 1 s. Brian2 "
        "records a spike at the start of the step whose update crossed the threshold and "
        "resets on the grid, so its error grows spike by spike. The error is taken over "
        "the spikes both lists have.\n",
        table(
            [
                "simulator",
                "setting",
                "spikes",
                "max abs error ms",
                "first spike ms",
                "run s",
            ],
            rows,
        ),
    ]


def agreement(counts, reference):
    diff = [abs(a - b) for a, b in zip(counts, reference, strict=True)]
    return [sum(d > 0 for d in diff), max(diff), f(sum(diff) / len(diff))]


def izhikevich(results):
    config = results["config"]["izhikevich"]
    b2 = {r["dt"]: r for r in results["brian2"]["izhikevich"]}
    dt_fine = min(b2)
    fine = b2[dt_fine]["counts"]
    b2_fine_run = b2[dt_fine]["median_s"]
    rows = [
        [
            f"Brian2, Euler dt = {dt}",
            sum(r["counts"]),
            *agreement(r["counts"], fine),
            "-",
            warm(r),
            f(r["median_s"] / b2_fine_run, 2),
        ]
        for dt, r in sorted(b2.items(), reverse=True)
    ]
    for name, r in results["neurosim"]["izhikevich"].items():
        reference = b2.get(r.get("euler_dt"), {"counts": fine})["counts"]
        label = f"neurosim, {name}" + (" (buffer overflow)" if r["overflow"] else "")
        rows.append(
            [
                label,
                sum(r["counts"]),
                *agreement(r["counts"], reference),
                f(r["first_s"], 1),
                warm(r),
                f(r["median_s"] / b2_fine_run, 2),
            ]
        )
    return [
        f"## 4. Sweep: {config['n']} Izhikevich neurons, I = 10, {config['t1']:g} ms\n",
        "Per-neuron a, b, c, d from `izhikevich_params` in `run_all.py` (regular spiking "
        "to chattering, fast spiking to low-threshold spiking; seed 0), handed to Brian2 "
        "in `out/bench/izhikevich_params.npz`. Spike counts are compared neuron by neuron "
        f"with Brian2 at dt = {dt_fine} ms; the neurosim Euler rows with Brian2 at the "
        "same dt, which is the same scheme (both variables updated from the old state, "
        'threshold tested at the end of the step and reset there). "exact": Tsit5 with '
        'every spike located; "per-neuron clocks": the default for neurons that never '
        "reach each other, each solved at its own time and step size as a lane of one "
        'loop; "network clock": one solve of all neurons, stopped at every spike; '
        '"vmap": `jax.vmap` over one-neuron simulations. The neurosim rows are timed '
        "in interleaved rounds (each called once per round), so that a slow phase of "
        "the machine slows them alike. Last "
        f"column: the wall time over Brian2's `run()` at dt = {dt_fine} ms.\n",
        table(
            [
                "run",
                "spikes",
                "neurons that differ",
                "max count diff",
                "mean count diff",
                "first call s",
                "warm s",
                "/ Brian2 fine",
            ],
            rows,
        ),
    ]


def per_event(results):
    pe = results["neurosim"]["per_event"]
    rows = [
        [
            r["n"],
            f"{r['t1']:g}",
            r["neurosim_grad_True"]["spikes"],
            r["plain"]["spikes"],
            warm(r["neurosim_grad_True"]),
            warm(r["neurosim_grad_False"]),
            warm(r["plain"]),
            f"{1 / per_event_speedup(r):.3g}",
            f(per_event_speedup(r), 2),
            f(per_event_speedup(r, "neurosim_grad_False"), 2),
        ]
        for r in pe
    ]
    out = [
        "## 5. Cost per event: neurosim against the plain diffrax loop\n",
        "The network of `benchmarks/per_event.py` (LIF, p = 0.02, drives spread over "
        "[1.05, 1.5]) for per_event.py's simulated time (20 ms at N = 4000, longer at "
        "smaller N; not capped). Cost per event = warm time / spikes. The plain loop "
        "(`plain_diffrax.py`) is a checkpointed, differentiable loop, like neurosim with "
        "`gradients=True`; `gradients=False` is neurosim's plain `lax.while_loop`.\n",
        table(
            [
                "N",
                "t1 ms",
                "neurosim spikes",
                "plain spikes",
                "neurosim s",
                "neurosim s, gradients=False",
                "plain s",
                "neurosim / plain per event",
                "speed-up",
                "speed-up, gradients=False",
            ],
            rows,
        ),
    ]
    mismatch = [
        str(r["n"]) for r in pe if r["neurosim_grad_True"]["spikes"] != r["plain"]["spikes"]
    ]
    if mismatch:
        out.append(
            f"Spike counts differ at N = {', '.join(mismatch)}. Where the plain loop has "
            "far fewer spikes, its float32 root finder stalls at large absolute times (see "
            "the design notes) and the loop ends at its iteration cap: its cost per event "
            "there measures the stall.\n"
        )
    return out


def gradient_row(g, name):
    if "error" in g[name]:
        return [name, "failed", g[name]["error"], "-", "-"]
    ratios = []
    for forward in ("forward, gradients=True", "forward, gradients=False"):
        ok = "median_s" in g[forward]
        ratios.append(f(g[name]["median_s"] / g[forward]["median_s"], 2) if ok else "-")
    return [name, f(g[name]["first_s"], 1), warm(g[name]), *ratios]


def gradients(results):
    g = results["neurosim"]["gradients"]
    names = ("forward, gradients=False", "forward, gradients=True", "value_and_grad")
    more = (
        "value_and_grad, gradients='whole'",
        "value_and_grad, checkpointed",
        "value_and_grad, gradients='eventprop'",
    )
    names += tuple(k for k in more if k in g)
    rows = [gradient_row(g, name) for name in names]
    gradient = "not computed (failed)"
    if "grad_norm" in g:
        gradient = f"finite {g['grad_finite']}, norm {g['grad_norm']:.4g}"
    others = g.get("relative_to_default", {})
    if others:
        gradient += (
            "; the other forms' gradients differ from it by "
            + ", ".join(f"{d:.1e} ({name.split(', ', 1)[1]})" for name, d in others.items())
            + " (relative, 2-norm)"
        )
    return [
        f"## 6. Gradients: {g['n']} recurrent LIF, {g['n_inputs']} Poisson inputs, "
        f"{g['t1']:g} ms\n",
        f"{g['input_spikes']} input spikes, {g.get('spikes', '?')} network spikes. Loss: "
        "the sum of all spike times (the buffer masked where infinite); gradient with "
        f"respect to the recurrent and the input weights: {gradient}. The functions are "
        "timed in interleaved rounds (each called once per round), so that a slow phase "
        "of the machine slows them alike and their ratios stay fair.\n",
        table(
            [
                "function",
                "first call s",
                "warm s",
                "x forward (gradients=True)",
                "x forward (gradients=False)",
            ],
            rows,
        ),
    ]


def drift(results):
    rows = [
        [
            r["dtype"],
            f"{r['k']:,}",
            f"{r['t_k_ms']:.4g}",
            r["spikes"],
            f"{r['max_abs_error_ms']:.2e}",
            f(r["max_error_spacings"], 2),
            f(r["wall_s"], 2),
        ]
        for r in results["neurosim"]["drift"]
    ]
    return [
        "## 7. Long runs: one LIF, the k-th spike against k * 10 ln 3 ms\n",
        "tau = 10 ms, threshold 1, reset 0, constant input 1.5, the exact loop. The "
        "error is the largest over spikes 1..k, in ms and in spacings of the precision "
        "at t_k (one spacing of float32 at 1.1e6 ms is 0.125 ms). The loop keeps time "
        "as a pair (rounded time, remainder), so no error accumulates spike by spike.\n",
        table(
            [
                "dtype",
                "k",
                "t_k ms",
                "spikes",
                "max abs error ms",
                "max error, spacings",
                "run s (incl. compile)",
            ],
            rows,
        ),
    ]


def agreement_sweep(results):
    rows = [
        [
            r["precision"],
            ", ".join(r["paths"]),
            r["checked"],
            r["agreed"],
            "-"
            if r["largest_ratio"] is None
            else f"{r['largest_ratio']:.2g} ({r['largest']})",
            r["worst"] or "none",
        ]
        for r in results["neurosim"]["agreement"]
    ]
    return [
        "## 8. Agreement: every path on random recurrent networks\n",
        "`benchmarks/agreement.py`: the `mixed` structure of `tests/_random_networks.py` "
        "(200 neurons, CubaLIF + LIF, exponential and delta synapses, no, scalar and "
        "per-synapse delays, refractory periods, Poisson inputs and a stepped current, "
        "200 ms). Every pair of paths must give the same spikes, at times within 1e-9 ms "
        "between exact paths and 1e-6 ms against the ODE path (float64), 5e-3 ms "
        "(float32). Largest difference: the largest time difference among agreeing "
        "pairs, relative to the tolerance.\n",
        table(
            [
                "precision",
                "paths",
                "networks",
                "agree",
                "largest difference / tolerance",
                "worst disagreement",
            ],
            rows,
        ),
    ]


ACCURACY_GOAL_MS = 1e-3  # what float64 with the default tolerances must reach


def accuracy_error(c):
    """A spike-time error: the figure (ms), or the counts and the error over the spikes
    both runs have when the counts differ."""
    if c["spikes"] != c["reference_spikes"]:
        counts = f"counts differ {c['spikes']} vs {c['reference_spikes']}"
        if min(c["spikes"], c["reference_spikes"]) == 0:
            return counts
        return f"{counts} (common prefix {c['max_error_ms']:.1e})"
    return f"{c['max_error_ms']:.1e}"


def accuracy_table(rows):
    """The table of `accuracy.py`, and the closed-form checks under it."""
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["case"], "-", f"**failed**: {r['error'][:200]}", *"-" * 7])
            continue
        f64, f32, ref = r["float64"], r["float32"], r["reference"]
        mark = "" if r["float64_meets_goal"] else f" **above {ACCURACY_GOAL_MS:g} ms**"
        lines.append(
            [
                r["case"],
                r["spikes"],
                accuracy_error(f64) + mark,
                f64["steps"],
                f(f64["wall_s"]),
                accuracy_error(f32),
                f32["steps"],
                f(f32["wall_s"]),
                ref["steps"],
                f(ref["wall_s"]),
            ]
        )
    out = table(
        [
            "case",
            "spikes",
            "float64 default: max error ms",
            "steps",
            "run s",
            "float32 default: max error ms",
            "steps",
            "run s",
            "reference: steps",
            "run s",
        ],
        lines,
    )
    for r in rows:
        if "closed_form" in r:
            figures = ", ".join(
                f"{name} {accuracy_error(c)}" for name, c in r["closed_form"].items()
            )
            out += f"\n{r['case']} against its closed form (ms): {figures}.\n"
    return out


def accuracy_summary(rows):
    """One sentence: every case within the goal in float64, or the ones that miss it."""
    missed = [r for r in rows if not r.get("float64_meets_goal", False)]
    if not missed:
        return (
            f"Float64 with the default tolerances is within {ACCURACY_GOAL_MS:g} ms of "
            f"the reference in all {len(rows)} cases.\n"
        )
    return (
        f"Float64 with the default tolerances misses {ACCURACY_GOAL_MS:g} ms in "
        f"{len(missed)} of {len(rows)} cases: "
        + "; ".join(
            f"{r['case']}: "
            + ("failed" if "error" in r else accuracy_error(r["float64"]))
            + "".join(f", {t['tol']:g}: {accuracy_error(t)}" for t in r.get("tighter", []))
            for r in missed
        )
        + " (errors in ms; after a comma, the error at a tighter rtol = atol).\n"
    )


def accuracy(results):
    rows = results["neurosim"]["accuracy"]
    return [
        "## 9. Accuracy of the default tolerances: every model's reference case\n",
        "`benchmarks/accuracy.py`: each case simulated in float64 and float32 with the "
        "default tolerances (rtol = atol = 1e-9 in float64, 1e-6 in float32) against "
        "float64 at rtol = atol = 1e-12. Max error: the largest spike-time difference "
        "from the reference, ms. Steps: accepted solver steps. Run: the second of two "
        "identical calls (compilation excluded).\n",
        accuracy_table(rows),
        accuracy_summary(rows),
    ]


def scaling(results):
    rows = []
    for r in results["neurosim"]["scaling"]:
        ours, b2 = r["neurosim"], r.get("brian2", {"error": "not run"})
        ok, b2_ok = "error" not in ours, "error" not in b2
        rows.append(
            [
                r["n"],
                ours["spikes"] if ok else ours["error"],
                f(ours["build_s"], 2) if ok else "",
                f(ours["compile_s"], 2) if ok else "",
                f(ours["warm_s"]) if ok else "",
                f(ours["us_per_spike"], 1) if ok else "",
                f(ours["peak_rss_mib"], 0) if ok else "",
                b2["spikes"] if b2_ok else b2["error"],
                f(b2["setup_s"], 2) if b2_ok else "",
                f(b2["run_s"]) if b2_ok else "",
                f(1e6 * b2["run_s"] / max(b2["spikes"], 1), 1) if b2_ok else "",
                f(b2["peak_rss_mib"], 0) if b2_ok else "",
                f(ours["warm_s"] / b2["run_s"], 2) if ok and b2_ok else "",
            ]
        )
    return [
        "## 10. Scaling: CUBA with a fixed fan-out\n",
        "`vogels_abbott_cuba(n=N, fan_out=80)` (`benchmarks/cuba_scaling.py`): every "
        "neuron projects to 80 distinct targets, so the rate and the work per spike stay "
        "the same at every N. Each size runs alone in its own process (peak memory = "
        "resident set of that process, JAX and XLA included), neurosim then Brian2 "
        "(dt = 0.1 ms, a first run, then the timed one). Build = Python-side "
        "construction; neurosim's compile = first call minus warm call.\n",
        table(
            [
                "N",
                "neurosim spikes",
                "build s",
                "compile s",
                "run s",
                "us / spike",
                "peak MiB",
                "Brian2 spikes",
                "Brian2 build s",
                "Brian2 run s",
                "Brian2 us / spike",
                "Brian2 peak MiB",
                "run ratio",
            ],
            rows,
        ),
    ]


def yinyang(results):
    y = results["neurosim"]["yinyang"]
    ours, ref = y["neurosim"], y["jaxsnn"]
    forward = ours["forward"]["best_s"]
    rows = [
        [
            "neurosim",
            r["label"],
            f(r["first_s"], 2),
            f(r["best_s"]),
            f(r["best_s"] / forward, 1),
        ]
        for r in ours.values()
    ]
    text = [
        "## 11. Yin-Yang: neurosim and jaxsnn\n",
        f"The 5-120-3 network of `examples/yinyang.py` at its initial weights (LIF "
        f"tau_mem {y['neuron']['tau_mem']:g} ms, tau_syn {y['neuron']['tau_syn']:g} ms, "
        f"five input spikes per point), a batch of {y['batch']} points under `jax.vmap`, "
        "first-spike cross-entropy, float32 (`benchmarks/gradients.py --only yinyang`). "
        "jaxsnn: its own 5-120-3 network as in its example "
        "`yinyang_layered_event_prop.py` with 120 hidden neurons "
        "(`benchmarks/jaxsnn_reference.py`: 25 input spikes per point, its time scale in "
        "s, its squared-error loss on the first output spikes), the same batch size, "
        "EventProp and jaxsnn's analytical backprop. Both under `jax.jit`; first call "
        f"(compile and run) and the best of {y['repeats']} warm calls (not the median); "
        "x forward: against the same simulator's first forward row (neurosim: the event "
        "loop, `gradients=False`).\n",
    ]
    headers = ["simulator", "function", "first call s", "warm s", "x forward"]
    if "error" in ref:
        return text + [
            table(headers, rows),
            f"jaxsnn: failed: {ref['error']}.\n",
        ]
    for r in ref["result"]:
        method = r["backprop_method"]
        jax_forward = r["forward"]["best_s"]
        for key, label in (("forward", "forward"), ("value_and_grad", "value+grad")):
            t = r[key]
            rows.append(
                [
                    f"jaxsnn {ref['versions']['jaxsnn']}",
                    f"{label}, {method}",
                    f(t["first_s"], 2),
                    f(t["best_s"]),
                    f(t["best_s"] / jax_forward, 1),
                ]
            )
    ratios = []
    for key, label in (("forward", "forward"), ("value_and_grad", "value+grad")):
        a, b = yinyang_pair(results, key)
        ratios.append(
            [
                f'{label}: `exact="layered"` / jaxsnn'
                + (" EventProp" if key != "forward" else ""),
                f(a["first_s"] / b["first_s"], 2),
                f(a["best_s"] / b["best_s"], 2),
            ]
        )
    return text + [
        table(headers, rows),
        "neurosim / jaxsnn (below 1: neurosim is faster):\n",
        table(["", "first call", "warm"], ratios),
    ]


def coba(results):
    config = results["config"]["coba"]
    b2 = results["brian2"]["coba"]
    theirs = {(r["n"], r["t1"]): r for r in b2["runs"]}
    rows = []
    for r in results["neurosim"]["coba"]:
        b = theirs[(r["n"], r["t1"])]
        rows.append(
            [
                r["n"],
                f"{r['t1']:g}",
                f"{r['clocks']}" + (" (buffer overflow)" if r["overflow"] else ""),
                r["spikes"],
                f(r["rate_hz"], 2),
                r["iterations"],
                f(r["first_s"], 1),
                warm(r, 2),
                b["spikes"],
                f(b["rate_hz"], 2),
                f(b["setup_s"], 2),
                f(b["run_s"]),
                f(b["loop_s"]),
                f(r["median_s"] / b["run_s"], 2),
                f(r["median_s"] / b["loop_s"], 2),
            ]
        )
    small = tuple(config["neuron_clocks"])
    where = (
        "at the benchmark's size"
        if small == (config["n"], config["t1"])
        else f"at N = {small[0]}, {small[1]:g} ms only (a smaller size)"
    )
    return [
        "## 12. COBA: Brette et al. (2007), benchmark 1\n",
        "`neurosim.networks.brette_coba(seed)` (conductance-based LIF, 80% excitatory, "
        "p = 0.02; weights scaled by 4000 / N below 4000 neurons) against the same "
        "equations, parameters, refractory period, initial-state distributions and "
        "connection probability in Brian2 (`brian2_reference.py coba`: Euler at "
        "dt = 0.1 ms, Brian2's choice for these equations, cython target, timed after a "
        "warm-up run; build = construction of groups and synapses). The two draw "
        "connections and initial states with different generators, so rates compare, "
        f"not spikes. Seed {config['seed']}. neurosim: `simulate(net, y0=y0, t1=..., "
        "gradients=False)`, float32, default tolerances, with the default clocks "
        "(`clocks=None`: per-neuron clocks, `CobaLIF` having quiet times) and, "
        f'{where}, on the network\'s clock (`clocks="network"`). Ratios: '
        "neurosim's warm time over Brian2's `run()` and over its simulation loop.\n",
        table(
            [
                "N",
                "t1 ms",
                "neurosim clocks",
                "neurosim spikes",
                "neurosim Hz",
                "iterations",
                "first call s",
                "warm s",
                "Brian2 spikes",
                "Brian2 Hz",
                "Brian2 build s",
                "Brian2 run() s",
                "Brian2 loop s",
                "/ Brian2 run()",
                "/ Brian2 loop",
            ],
            rows,
        ),
        f"Brian2's warm-up run (N = {b2['warmup']['n']}) took "
        f"{f(b2['warmup']['setup_s'], 1)} s to build and {f(b2['warmup']['run_s'], 1)} s "
        "in `run()`.\n",
    ]


def delay_label(delay):
    return f"{delay:g} ms" if delay else "none"


def divergence_label(r, t1):
    if r["divergence_ms"] is None:
        return f"none to {t1:g} ms"
    return f(r["divergence_ms"], 1)


def izhikevich_2003(results):
    data = results["neurosim"]["izhikevich_2003"]
    t1 = data["t1"]
    rows = []
    for ref in data["reference"]:
        rows.append(
            [
                delay_label(ref["delay_ms"]),
                f"neurosim float64, rtol = atol = {ref['rtol']:g} (reference)",
                ref["spikes"],
                f(ref["rate_hz"], 2),
                "-",
                f(ref["first_s"], 1),
                "-",
                "-",
                "-",
            ]
        )
        delay = ref["delay_ms"]
        ours = next(r for r in data["runs"] if r["delay_ms"] == delay)
        b2 = sorted(
            (
                r
                for r in results["brian2"]["izhikevich_2003"]
                if (r["delay_ms"] or None) == delay
            ),
            key=lambda r: -r["dt"],
        )
        fine = b2[-1]["median_s"]
        rows.append(
            [
                delay_label(delay),
                "neurosim float32, default tolerances"
                + (" (buffer overflow)" if ours["overflow"] else ""),
                ours["spikes"],
                f(ours["rate_hz"], 2),
                f"{divergence_label(ours, t1)} ({ours['matched']})",
                f(ours["first_s"], 1),
                warm(ours, 2),
                f(ours["median_s"] / fine, 2),
                ours["iterations"],
            ]
        )
        rows += [
            [
                delay_label(delay),
                f"Brian2, Euler dt = {r['dt']:g} ms",
                r["spikes"],
                f(r["rate_hz"], 2),
                f"{divergence_label(r, t1)} ({r['matched']})",
                "-",
                warm(r, 2),
                f(r["median_s"] / fine, 2),
                "-",
            ]
            for r in b2
        ]
    return [
        f"## 13. Izhikevich (2003): 1000 neurons, all to all, {t1:g} ms\n",
        f"`neurosim.networks.izhikevich_2003(seed={data['seed']})` (800 excitatory, 200 "
        "inhibitory, thalamic noise redrawn every ms), without and with a 1 ms delay on "
        "every connection. Brian2 (`brian2_reference.py izhikevich_2003`) simulates the "
        "same network: parameters, weights and noise as drawn for the float64 reference, "
        "handed over in `out/bench/izhikevich_2003_network.npz`; Euler (Brian2's choice "
        "for these equations), threshold v >= 30 tested at the end of each step, "
        "synapses `v_post += w` with Brian2's `delay`. The network is chaotic, so each "
        "run is compared with a float64 neurosim run at rtol = atol = 1e-10 (its own "
        "process): divergence = the first time at which a spike is more than 0.1 ms away "
        "from the reference's or missing (`first_divergence` of `tests/_compare.py`), "
        "the spikes matched before it in brackets. The reference's time is one call, "
        "compilation included. Last columns: the wall time over Brian2's `run()` at the "
        "finest dt at the same delay; neurosim's event-loop iterations.\n",
        table(
            [
                "delay",
                "run",
                "spikes",
                "rate Hz",
                "divergence ms (spikes matched)",
                "first call s",
                "warm s",
                "/ Brian2 finest dt",
                "iterations",
            ],
            rows,
        ),
    ]


def coba_accuracy(results):
    data = results["neurosim"]["coba_accuracy"]
    t1 = data["t1"]
    return [
        f"## 14. COBA at equal accuracy: 4000 neurons, {t1:g} ms\n",
        f"`benchmarks/coba_accuracy.py`: `brette_coba({data['seed']})` drawn once in float64 "
        "and handed to Brian2 as it is (`brian2_reference.py coba_network`: synapses "
        "and initial states), so the two simulate the same network. Every run is "
        "compared with neurosim in float64 at rtol = atol = 1e-12: divergence = the "
        "first time a spike is more than 0.1 ms away from the reference's or missing, "
        "the spikes matched before it in brackets (how far the reference itself can be "
        "trusted: the float64 run at 1e-10). Wall time: neurosim's best warm call "
        "(float64: one first call, compilation included), Brian2's `run()` (Euler, "
        "after a run that fills its cython cache; one run at dt below 0.01 ms).\n",
        "\n".join(coba_accuracy_table(data["rows"], t1)) + "\n",
    ]


SECTIONS = [  # (title if it fails, section, the workloads it reads)
    ("Benchmark results", header, ()),
    ("Goals of the benchmark issue", goals, ()),
    ("1. CUBA", cuba, ("brian2/cuba", "neurosim/cuba")),
    ("2. Compile time: neurosim's CUBA", compile_time, ("neurosim/cuba",)),
    ("3. Accuracy: one LIF", lif, ("brian2/lif", "neurosim/lif")),
    (
        "4. Sweep: Izhikevich neurons",
        izhikevich,
        ("brian2/izhikevich", "neurosim/izhikevich"),
    ),
    ("5. Cost per event", per_event, ("neurosim/per_event",)),
    ("6. Gradients", gradients, ("neurosim/gradients",)),
    ("7. Long runs", drift, ("neurosim/drift",)),
    ("8. Agreement", agreement_sweep, ("neurosim/agreement",)),
    ("9. Accuracy of the default tolerances", accuracy, ("neurosim/accuracy",)),
    ("10. Scaling: CUBA with a fixed fan-out", scaling, ("neurosim/scaling",)),
    ("11. Yin-Yang: neurosim and jaxsnn", yinyang, ("neurosim/yinyang",)),
    ("12. COBA", coba, ("brian2/coba", "neurosim/coba")),
    (
        "13. Izhikevich (2003)",
        izhikevich_2003,
        ("brian2/izhikevich_2003", "neurosim/izhikevich_2003"),
    ),
    ("14. COBA at equal accuracy", coba_accuracy, ("neurosim/coba_accuracy",)),
]


def write_report(results, path):
    lines = []
    for title, section, needs in SECTIONS:
        try:
            lines += section(results)
        except MISSING:
            lines += [f"## {title}\n", f"Not measured: {errors(results, needs)}.\n"]
    history = Path(__file__).with_name("HISTORY.md")
    if history.exists():
        lines += ["", history.read_text()]
    Path(path).write_text("\n".join(lines))


if __name__ == "__main__":
    default = HERE.parent / "out" / "bench" / "results.json"
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "RESULTS.md"
    write_report(json.loads(source.read_text()), target)
