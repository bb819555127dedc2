"""The gallery: the 20 behaviours of Izhikevich (2004), Fig. 1, and the phase portraits
of the circuit models, one PNG each (`python -m neurosim gallery`).

Each Izhikevich panel shows the exact continuous-time model (adaptive solver, spikes
located exactly) and the figure's Euler scheme (`SequentialEuler` at the published
step, reset at the end of the crossing step) over the stimulus protocol. Each circuit
model is drawn in its phase plane with its nullclines, fixpoints and one trajectory.
"""

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from ._currents import Step
from ._simulate import simulate
from .neurons import FHNRS, Boomerang, WereRabbit
from .neurons.izhikevich import IZHIKEVICH_BEHAVIOURS, izhikevich_behaviour

CIRCUITS = ("fhn", "wererabbit", "boomerang")
NAMES = IZHIKEVICH_BEHAVIOURS + CIRCUITS


def behaviour_title(name: str) -> str:
    """The panel's title, e.g. "(G) Class 1 excitability", from its description."""
    return izhikevich_behaviour(name).description.split(":")[0]


def behaviour_figure(name: str):
    """The figure of one Izhikevich behaviour: membrane potential (exact model and the
    figure's Euler scheme) above the stimulus."""
    import matplotlib.pyplot as plt

    from .plot import _spike_marks

    published = izhikevich_behaviour(name)
    exact_panel = izhikevich_behaviour(name, continuous=True)
    ts = jnp.linspace(0.0, published.t1, 2001)
    figure_run = published.simulate(figure_step=True, record=ts, max_spikes=256)
    exact_run = exact_panel.simulate(record=ts, rtol=1e-8, atol=1e-8, max_spikes=256)
    t = np.asarray(ts)
    fig, (ax_v, ax_i) = plt.subplots(
        2, 1, figsize=(7, 4.2), sharex=True, gridspec_kw={"height_ratios": (3, 1)}
    )
    ax_v.plot(
        t,
        np.asarray(figure_run.states.v[:, 0]),
        color="0.6",
        lw=1.0,
        label=f"figure's Euler scheme (dt = {published.dt:g} ms)",
    )
    variant = "" if published.shown_by_exact_model else " (continuous-time variant)"
    ax_v.plot(
        t,
        np.asarray(exact_run.states.v[:, 0]),
        color="tab:blue",
        lw=1.0,
        label=f"exact model{variant}",
    )
    _spike_marks(ax_v, exact_run.spike_train(0), 35.0, "tab:blue")
    ax_v.set_ylim(-95, 42)
    ax_v.set_ylabel("v (mV)")
    ax_v.set_title(behaviour_title(name))
    ax_v.legend(loc="lower right", fontsize="small")
    ax_i.plot(t, np.asarray(jax.vmap(exact_panel.current)(ts)), color="black", lw=1.0)
    ax_i.set_xlabel("time (ms)")
    ax_i.set_ylabel("I (mV/ms)")
    ax_i.set_xlim(0.0, published.t1)
    fig.tight_layout()
    return fig


def _circuit_setup(name: str):
    """`(model, x, y, xlim, ylim, current, title, simulate kwargs)` of a circuit model."""
    if name == "fhn":
        model = FHNRS()
        y0 = model.init_state(1)
        y0 = type(y0)(v=y0.v + 0.1, v_slow=y0.v_slow, i_app=y0.i_app)
        return (
            model,
            "v",
            "v_slow",
            (-3.0, 3.0),
            (-1.0, 1.5),
            0.5,
            "FitzHugh-Nagumo (Ribar-Sepulchre form), constant input 0.5: relaxation "
            "oscillation",
            dict(t1=250.0, y0=y0),
        )
    if name == "wererabbit":
        return (
            WereRabbit(),
            "u",
            "v",
            (-0.1, 0.45),
            (-0.1, 0.45),
            0.0,
            "WereRabbit: a kick into u at 0.5 ms sends the neuron to the focus with u > v",
            dict(
                t1=60.0,
                input_spikes=(jnp.array([0.5]), jnp.array([0])),
                input_weights=jnp.array([[0.1]]),
            ),
        )
    if name == "boomerang":
        return (
            Boomerang(),
            "u",
            "v",
            (0.18, 0.36),
            (0.18, 0.36),
            0.0,
            "Boomerang: from the saddle, an input of 0.05 for 5 ms tips it into a focus",
            dict(t1=40.0, current=Step(0.0, 0.05, 5.0)),
        )
    raise ValueError(f"no circuit model {name!r}; valid: {', '.join(CIRCUITS)}")


def circuit_figure(name: str):
    """The phase portrait of a circuit model with one trajectory."""
    import matplotlib.pyplot as plt

    from .plot import phase_portrait

    model, x, y, xlim, ylim, current, title, run = _circuit_setup(name)
    t1 = run.pop("t1")
    run.setdefault("current", current)
    sol = simulate(
        model,
        n=1,
        t1=t1,
        record=jnp.linspace(0.0, t1, 4001),
        rtol=1e-10,
        atol=1e-10,
        max_spikes=64,
        **run,
    )
    fig, ax = plt.subplots(figsize=(6, 5))
    phase_portrait(
        model, x, y, xlim=xlim, ylim=ylim, current=current, trajectory=sol, ax=ax
    )
    ax.set_title(title, fontsize="medium", wrap=True)
    fig.tight_layout()
    return fig


def run_gallery(out_dir: str = "out", only=None, quiet: bool = False) -> list[str]:
    """Write one PNG per behaviour and per circuit model under `out_dir` (the names in
    `only`, default all) and return their paths. Progress goes to stderr unless
    `quiet`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = NAMES if not only else tuple(only)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(
            f"gallery: unknown name {unknown[0]!r} in --only; valid names: {', '.join(NAMES)}"
        )
    os.makedirs(out_dir, exist_ok=True)
    written = []
    previous = jax.config.jax_enable_x64
    # float64: spike times to 1e-8 ms and the circuit models' fixpoint spikes.
    jax.config.update("jax_enable_x64", True)
    try:
        for k, name in enumerate(names, 1):
            start = time.perf_counter()
            if name in CIRCUITS:
                fig, path = circuit_figure(name), os.path.join(out_dir, f"phase_{name}.png")
            else:
                fig = behaviour_figure(name)
                path = os.path.join(out_dir, f"izhikevich_{name}.png")
            fig.savefig(path, dpi=90)
            plt.close(fig)
            written.append(path)
            if not quiet:
                print(
                    f"[{k}/{len(names)}] {path} ({time.perf_counter() - start:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        jax.config.update("jax_enable_x64", previous)
    return written
