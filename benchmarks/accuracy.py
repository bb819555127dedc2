"""Accuracy of the default tolerances: every model's reference case against an
accurate run.

`neurosim.simulate` picks its default `rtol` and `atol` by dtype: 1e-9 in float64
(`jax_enable_x64`), 1e-6 in float32. For each model's reference case (about 1 s of
simulated time where the model's time scale allows, several spikes where it does
not) this script simulates

- the reference: float64, `rtol = atol = 1e-12` (and a large `max_solver_steps`);
- float64 with the default tolerances;
- float32 with the default tolerances, against the float64 reference;

and reports per case the spike count, the largest spike-time error in ms (or "counts
differ a vs b", then the error over the spikes both have), the accepted solver steps
and the wall time of a warm run (each run is called twice and the second call is
timed, so compilation is excluded). The LIF on the ODE path (`exact=False`) has a
closed form as well, t_k = k tau ln(I / (I - v_th)), and is checked against it. A
case whose float64 default error exceeds 1e-3 ms is marked in the table and listed
at the end, with its errors at rtol = atol = 1e-10 and 1e-11.

Usage: `python benchmarks/accuracy.py [--quick] [--json PATH]`. `--quick` runs a
subset (LIF, AdEx j = 40, three Izhikevich panels, FHNRS, one adaptation).
"""

import argparse
import json
import math
import time
import types
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from bench_report import ACCURACY_GOAL_MS, accuracy_summary, accuracy_table

import neurosim as ns
from neurosim.neurons.adaptation import (
    AdaptiveCurrent,
    SpikeAdaptiveThreshold,
    VoltageAdaptiveThreshold,
)
from neurosim.neurons.adex import EIF
from neurosim.neurons.boomerang import Boomerang
from neurosim.neurons.fhn import FHNRS
from neurosim.neurons.wererabbit import WereRabbit

REFERENCE_TOL = 1e-12
REFERENCE_STEPS = 1_000_000  # max_solver_steps of the reference runs
MAX_SPIKES = 2000
TIGHTER = (1e-10, 1e-11)  # tried where the float64 defaults miss the goal
LIF_TAU, LIF_CURRENT, LIF_T1 = 10.0, 1.5, 1000.0
QUICK_PANELS = ("tonic_spiking", "tonic_bursting", "mixed_mode")


def precision(x64):
    """Switch to float64 (`x64`) or float32; models are built after it."""
    jax.config.update("jax_enable_x64", x64)


class Case(NamedTuple):
    """One reference case: `prepare()` builds the model and its inputs in the precision
    enabled and returns `simulate(**options)`, which runs it; `closed_form()` gives
    exact spike times where known."""

    name: str
    prepare: object
    quick: bool = False
    closed_form: object = None


def _single(build, **kwargs):
    """A case of one neuron: `build()` makes the model; `kwargs` are `simulate`'s
    arguments, those that depend on the precision (arrays) given as functions."""

    def prepare():
        model = build()
        arguments = {
            name: (x() if isinstance(x, types.FunctionType) else x)
            for name, x in kwargs.items()
        }
        return lambda **options: ns.simulate(model, n=1, **arguments, **options)

    return prepare


def _lif():
    return ns.LIF(tau_mem=LIF_TAU, v_th=1.0, v_reset=0.0)


def _lif_closed_form():
    period = LIF_TAU * math.log(LIF_CURRENT / (LIF_CURRENT - 1.0))
    return period * np.arange(1, int(LIF_T1 / period) + 1)


def _cuba_inputs():
    """Two Poisson trains (40 Hz excitatory, 20 Hz inhibitory) over 1 s, drawn once
    with numpy so that both precisions get the same times."""
    rng = np.random.default_rng(0)
    trains = [np.cumsum(rng.exponential(1000.0 / rate, 80)) for rate in (40.0, 20.0)]
    times = np.concatenate([t[t < 1000.0] for t in trains])
    sources = np.concatenate([np.full(np.sum(t < 1000.0), k) for k, t in enumerate(trains)])
    order = np.argsort(times, kind="stable")
    return times[order], sources[order]


CUBA_TIMES, CUBA_SOURCES = _cuba_inputs()


def _kicked(model, first, period, jumps, kicks=7):
    """A fixpoint model (one spike per arrival) kicked out of its fixpoint `kicks`
    times, as in its tests: at `first` ms by `jumps[0]`, then every `period` ms by
    `jumps[1]` of alternating sign (-, +, ...), each input spike from its own source."""
    times = np.array([first, *(period * np.arange(1, kicks))])
    signs = (-1.0) ** np.arange(1, kicks)
    weights = np.array([jumps[0], *(jumps[1] * signs)])[:, None]
    return Case(
        f"{model.__name__}, {kicks} kicks",
        _single(
            model,
            t1=period * (kicks + 0.5),
            input_spikes=lambda: (jnp.asarray(times), np.arange(kicks)),
            input_weights=lambda: jnp.asarray(weights),
        ),
    )


def _continuous(name):
    """Whether a panel needs its continuous-time variant: with the published values of
    DAP, bistability and inhibition-induced bursting the exact model does not show the
    behaviour (inhibition-induced bursting fires ever faster, without end)."""
    return not ns.izhikevich_behaviour(name).shown_by_exact_model


def _panel(name):
    continuous = _continuous(name)

    def prepare():
        return ns.izhikevich_behaviour(name, continuous=continuous).simulate

    return prepare


def _tonic_one_second():
    panel = ns.izhikevich_behaviour("tonic_spiking")
    return _single(lambda: panel.neuron, t1=1000.0, current=panel.current)()


def _adapted(wrapper, quick=False, **parameters):
    """An adaptation mechanism around the LIF (the settings of
    tests/neurons/test_adaptation.py), driven by 2.0 for 1 s."""
    build = lambda: wrapper(_lif(), **parameters)  # noqa: E731
    return Case(f"{wrapper.__name__}(LIF)", _single(build, t1=1000.0, current=2.0), quick)


def cases():
    """Every reference case, in the order of the table."""
    out = [
        Case(
            "LIF (ODE path)",
            _single(_lif, t1=LIF_T1, current=LIF_CURRENT, exact=False),
            quick=True,
            closed_form=_lif_closed_form,
        ),
        Case(
            "CubaLIF (ODE path, input spikes)",
            _single(
                lambda: ns.CubaLIF(tau_mem=20.0, v_th=1.0, v_reset=0.0),
                t1=1000.0,
                current=0.9,
                input_spikes=lambda: (jnp.asarray(CUBA_TIMES), CUBA_SOURCES),
                input_weights=lambda: jnp.array([[0.3], [-0.2]]),
                exact=False,
            ),
        ),
    ]
    out += [
        Case(
            f"Izhikevich {name}" + (" (continuous=True)" if _continuous(name) else ""),
            _panel(name),
            quick=name in QUICK_PANELS,
        )
        for name in ns.IZHIKEVICH_BEHAVIOURS
    ]
    out += [
        Case("Izhikevich tonic spiking, 1 s", _tonic_one_second),
        Case("AdEx j = 25", _single(ns.AdEx, t1=1000.0, current=25.0)),
        Case("AdEx j = 40", _single(ns.AdEx, t1=1000.0, current=40.0), quick=True),
        Case("EIF j = 20", _single(EIF, t1=1000.0, current=20.0)),
        Case("FHNRS I = 0.5", _single(FHNRS, t1=1000.0, current=0.5), quick=True),
        _kicked(WereRabbit, first=0.5, period=80.0, jumps=(0.1, 0.3)),
        _kicked(Boomerang, first=1.0, period=60.0, jumps=(0.02, 0.1)),
        _adapted(
            AdaptiveCurrent,
            quick=True,
            tau_adapt=(20.0, 200.0),
            voltage_coupling=(0.05, 0.02),
            spike_increment=(0.1, 0.05),
        ),
        _adapted(
            VoltageAdaptiveThreshold, adapt_rate=0.02, rebound_rate=0.05, theta_reset=0.3
        ),
        _adapted(
            SpikeAdaptiveThreshold, tau_adapt=(30.0, 300.0), spike_increment=(0.2, 0.05)
        ),
    ]
    return out


def run(case, **options):
    """Spike times (float64 numpy), solver steps and the wall time of the second of
    two identical calls (the model is built before either)."""
    options = dict(max_spikes=MAX_SPIKES, gradients=False) | options
    simulate = case.prepare()
    jax.block_until_ready(simulate(**options))
    start = time.perf_counter()
    sol = jax.block_until_ready(simulate(**options))
    wall = time.perf_counter() - start
    if bool(sol.overflow):
        raise RuntimeError(f"{case.name}: spike buffer full, raise MAX_SPIKES")
    times, _ = sol.spikes()
    return {
        "times": np.asarray(times, np.float64),
        "steps": int(sol.solver_steps),
        "wall_s": wall,
    }


def compare(times, reference):
    """The spike count, the reference's and the largest time difference over the
    spikes both have (ms)."""
    k = min(len(times), len(reference))
    error = float(np.max(np.abs(times[:k] - reference[:k]))) if k else 0.0
    return {"spikes": len(times), "reference_spikes": len(reference), "max_error_ms": error}


def meets_goal(c):
    return c["spikes"] == c["reference_spikes"] and c["max_error_ms"] <= ACCURACY_GOAL_MS


def measure(case):
    """One row: the reference, float64 and float32 with the defaults."""
    precision(True)
    reference = run(
        case, rtol=REFERENCE_TOL, atol=REFERENCE_TOL, max_solver_steps=REFERENCE_STEPS
    )
    f64 = run(case)
    precision(False)
    f32 = run(case)
    row = {
        "case": case.name,
        "spikes": len(reference["times"]),
        "reference": {k: v for k, v in reference.items() if k != "times"},
        "float64": {**compare(f64["times"], reference["times"]), "steps": f64["steps"]},
        "float32": {**compare(f32["times"], reference["times"]), "steps": f32["steps"]},
    }
    row["float64"]["wall_s"], row["float32"]["wall_s"] = f64["wall_s"], f32["wall_s"]
    if case.closed_form is not None:
        exact = case.closed_form()
        row["closed_form"] = {
            name: compare(r["times"], exact)
            for name, r in (("reference", reference), ("float64", f64), ("float32", f32))
        }
    row["float64_meets_goal"] = meets_goal(row["float64"])
    if not row["float64_meets_goal"]:
        row["tighter"] = tighter(case, reference["times"])
    return row


def tighter(case, reference):
    """For a case that misses the goal in float64 with the defaults: the errors at
    tighter tolerances, down to the first that meets it."""
    out = []
    precision(True)
    for tol in TIGHTER:
        times = run(case, rtol=tol, atol=tol, max_solver_steps=REFERENCE_STEPS)["times"]
        out.append({"tol": tol, **compare(times, reference)})
        if meets_goal(out[-1]):
            break
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a subset of the cases")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    parser.add_argument(
        "--only", nargs="+", metavar="TEXT", help="the cases whose name contains TEXT"
    )
    args = parser.parse_args()
    selected = [c for c in cases() if c.quick or not args.quick]
    if args.only:
        selected = [c for c in selected if any(text in c.name for text in args.only)]
    rows = []
    for case in selected:
        start = time.perf_counter()
        try:
            rows.append(measure(case))
        except Exception as error:  # noqa: BLE001 (a failing case is a finding to report)
            rows.append({"case": case.name, "error": f"{type(error).__name__}: {error}"})
        print(f"{case.name}: {time.perf_counter() - start:.1f} s", flush=True)
    print()
    print(accuracy_table(rows))
    print(accuracy_summary(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
