"""Train a spiking network on the Yin-Yang data set by its first-spike times.

The Yin-Yang data set (Kriener et al. 2022) is three classes of points in the unit
square: the yin, the yang and their two dots. It is small and not linearly separable,
and a standard test of training through spike times. Here, as in event-based
time-to-first-spike training (Goeltz et al. 2021):

- a point (x, y) becomes five input spikes, at times that code x, y, 1 - x, 1 - y, and a
  bias spike;
- 120 hidden LIF neurons and 3 output LIF neurons (exponential synaptic currents), each
  firing at most once (a refractory period longer than the run);
- the class is the output neuron that fires first; the loss is the time-to-first-spike
  cross-entropy (`neurosim.losses.first_spike_cross_entropy`), with silent output
  neurons given a stand-in time from their membrane maximum
  (`neurosim.losses.silent_surrogate`), so that a silent output still learns, and a
  term that asks the correct neuron to fire by 25 ms (else silence, with the stand-in
  times ordering the classes, is a solution the loss accepts);
- the gradient comes through the exact spike times, and Adam takes the steps. The
  network is feed-forward and every neuron fires at most once, so by default the
  first spikes are computed layer by layer (`simulate(..., exact="layered")`, no
  event loop, gradients by plain autodiff); `--method loop` runs the exact event
  loop instead (gradients from the replay of its events). Both give the same spike
  times and gradients.

Run: `python examples/yinyang.py` (`--epochs`, `--seed`, `--batch-size`, `--method`,
`--out`).
It prints the training loss, the train and test accuracy and the wall time of every
epoch, and saves the decision map of the trained network as a PNG (with matplotlib).
"""

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import neurosim as ns
from neurosim import losses

# Times in ms.
T_EARLY, T_LATE = 2.0, 22.0  # input spike times code 0 and 1
T_BIAS = 2.0
T1 = 50.0  # the end of a run: every neuron that fires has fired by then
RECORD = jnp.linspace(0.0, T1, 21)  # for the silent outputs' membrane maxima
HIDDEN, CLASSES = 120, 3
NEURON = dict(tau_mem=20.0, tau_syn=5.0, t_ref=1e4)  # t_ref > T1: fire at most once
TAU_LOSS = 4.0  # ms: the cross-entropy's temperature
SILENT_SLOPE = 20.0  # ms per unit of membrane below threshold
T_TARGET = 25.0  # ms: the correct neuron is asked to fire by then
LATE = 0.1  # per ms that the correct neuron's time exceeds T_TARGET
MAX_SPIKES = HIDDEN + CLASSES
# How `simulate` computes the spikes: "layered" (feed-forward, fire-once: layer by
# layer) or True (the exact event loop). `main` sets it from `--method`.
EXACT = "layered"


# ----- the data set ---------------------------------------------------------------


def _which_class(x, y, r_small=0.1, r_big=0.5):
    """0 yin, 1 yang, 2 dots (Kriener et al. 2022)."""
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    if d_right < r_small or d_left < r_small:
        return 2
    yin = (
        d_right <= r_small
        or r_small < d_left <= 0.5 * r_big
        or (y > r_big and d_right > 0.5 * r_big)
    )
    return 0 if yin else 1


def yinyang(size: int, seed: int):
    """`(points, labels)`: `size` points in the disc of radius 0.5 around (0.5, 0.5),
    the class of each drawn uniformly first, then a point of that class by rejection."""
    rng = np.random.default_rng(seed)
    points, labels = np.zeros((size, 2)), np.zeros(size, np.int32)
    for i in range(size):
        goal = rng.integers(3)
        while True:
            x, y = rng.random(2)
            if np.hypot(x - 0.5, y - 0.5) > 0.5:
                continue
            if _which_class(x, y) == goal:
                break
        points[i], labels[i] = (x, y), goal
    return jnp.asarray(points, jnp.float32), jnp.asarray(labels)


def input_times(point):
    """The five input spike times (ms) of a point."""
    x, y = point[0], point[1]
    coded = jnp.stack([x, y, 1.0 - x, 1.0 - y])
    return jnp.concatenate([T_EARLY + (T_LATE - T_EARLY) * coded, jnp.array([T_BIAS])])


# ----- the network ----------------------------------------------------------------


def init_params(key):
    """Weights `(w_in (5, 120), w_out (120, 3))`, drawn so that most hidden neurons
    fire once and the outputs fire after them."""
    k1, k2 = jax.random.split(key)
    w_in = 1.6 + 0.8 * jax.random.normal(k1, (5, HIDDEN))
    w_out = 0.12 + 0.12 * jax.random.normal(k2, (HIDDEN, CLASSES))
    return w_in, w_out


def network(params, point):
    w_in, w_out = params
    lif = ns.LIF(**NEURON)
    return ns.Network(
        {"hidden": ns.Population(lif, HIDDEN), "out": ns.Population(lif, CLASSES)},
        [ns.Projection("in", "hidden", w_in), ns.Projection("hidden", "out", w_out)],
        inputs={"in": ns.SpikeTrains(input_times(point), jnp.arange(5), 5)},
    )


def output_times(params, point):
    """The output neurons' first-spike times (`inf` when silent) and their stand-ins
    (`silent_surrogate`)."""
    sol = ns.simulate(
        network(params, point),
        t1=T1,
        max_spikes=MAX_SPIKES,
        record=RECORD,
        record_fields={"out": ("v",)},
        exact=EXACT,
    )
    first = sol.first_spike_times("out")
    v_max = losses.max_membrane(sol.states["out"].v)
    return first, losses.silent_surrogate(
        first, v_max, v_th=1.0, t_silent=T1, slope=SILENT_SLOPE
    )


def loss(params, point, label):
    _, times = output_times(params, point)
    ce = losses.first_spike_cross_entropy(times, label, tau=TAU_LOSS)
    # Without this term, silence is a solution: the stand-in times alone can order
    # the classes. It asks the correct neuron to fire, and early.
    return ce + LATE * jax.nn.relu(times[label] - T_TARGET)


@eqx.filter_jit
def train_step(params, opt_state, points, labels, optimizer):
    def batch_loss(params):
        return jnp.mean(jax.vmap(loss, (None, 0, 0))(params, points, labels))

    value, grads = jax.value_and_grad(batch_loss)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value


@eqx.filter_jit
def predict(params, points):
    """The class of each point: the output neuron that fires first (-1: none fires)."""
    first, _ = jax.vmap(output_times, (None, 0))(params, points)
    fired = jnp.any(jnp.isfinite(first), axis=-1)
    return jnp.where(fired, jnp.argmin(first, axis=-1), -1)


def accuracy(params, points, labels, batch=500):
    hits = 0
    for start in range(0, points.shape[0], batch):
        chunk = slice(start, start + batch)
        hits += int(jnp.sum(predict(params, points[chunk]) == labels[chunk]))
    return hits / points.shape[0]


def train(
    epochs=60, seed=0, batch_size=50, lr=1e-2, train_size=5000, test_size=1000, log=print
):
    """Train from `seed`; returns the parameters and per-epoch records."""
    points, labels = yinyang(train_size, seed=42)
    test_points, test_labels = yinyang(test_size, seed=40)
    params = init_params(jax.random.PRNGKey(seed))
    schedule = optax.cosine_decay_schedule(lr, epochs * (train_size // batch_size))
    optimizer = optax.adam(schedule)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(train_size)
        values = []
        for b in range(train_size // batch_size):
            idx = order[b * batch_size : (b + 1) * batch_size]
            params, opt_state, value = train_step(
                params, opt_state, points[idx], labels[idx], optimizer
            )
            values.append(float(value))
        seconds = time.perf_counter() - start
        train_acc = accuracy(params, points, labels)
        test_acc = accuracy(params, test_points, test_labels)
        history.append((epoch, float(np.mean(values)), train_acc, test_acc, seconds))
        log(
            f"epoch {epoch:3d}  loss {np.mean(values):.4f}  train {100 * train_acc:5.1f}%  "
            f"test {100 * test_acc:5.1f}%  ({seconds:.1f} s)"
        )
    return params, history


def decision_map(params, path, resolution=100):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = jnp.linspace(0.0, 1.0, resolution)
    grid = jnp.stack(jnp.meshgrid(xs, xs), axis=-1).reshape(-1, 2)
    classes = np.concatenate(
        [np.asarray(predict(params, grid[i : i + 500])) for i in range(0, len(grid), 500)]
    )
    inside = np.hypot(grid[:, 0] - 0.5, grid[:, 1] - 0.5) <= 0.5
    image = np.where(inside, classes, np.nan).reshape(resolution, resolution)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(image, origin="lower", extent=(0, 1, 0, 1), cmap="viridis", vmin=-1, vmax=2)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Yin-Yang: class of the first output spike")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--out", default="yinyang_decisions.png")
    parser.add_argument(
        "--method",
        choices=("layered", "loop"),
        default="layered",
        help="layer by layer (default) or the exact event loop",
    )
    args = parser.parse_args(argv)
    global EXACT
    EXACT = "layered" if args.method == "layered" else True
    start = time.perf_counter()
    params, history = train(args.epochs, args.seed, args.batch_size, args.lr)
    best = max(h[3] for h in history)
    print(
        f"final test accuracy {100 * history[-1][3]:.1f}% (best {100 * best:.1f}%), "
        f"{time.perf_counter() - start:.0f} s in all"
    )
    try:
        decision_map(params, args.out)
        print(f"decision map saved to {args.out}")
    except ImportError:
        print("matplotlib is not installed: no decision map (pip install 'neurosim[plot]')")


if __name__ == "__main__":
    main()
