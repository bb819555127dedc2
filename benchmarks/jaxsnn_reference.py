"""The jaxsnn side of the Yin-Yang benchmark: jaxsnn's 5-120-3 network, timed in jaxsnn.

Runs under an interpreter that has jaxsnn (`jaxsnn==0.3.0`, see `requirements-bench.txt`),
never under neurosim's `.venv`: jaxsnn is no neurosim dependency. `benchmarks/
gradients.py --jaxsnn-python PYTHON` (and `run_all.py`) launch it as a subprocess and
read the JSON it prints on its last line of output; by hand:

    .venv-bench/bin/python benchmarks/jaxsnn_reference.py [--batch 256] [--repeats 5]

The network is the one of jaxsnn's example
`jaxsnn/examples/event/yinyang_layered_event_prop.py`, built with jaxsnn's own API
(`Topology`, `Source`, `LIF`, `Linear`), with its parameters except the hidden size:

- input: `yinyang_dataset(mirror=True, bias_spike=0.0)`, (x, y, 1 - x, 1 - y, 0),
  encoded by `spatio_temporal_encode(t_late=2 * 6e-6, duplication=5,
  duplicate_neurons=False)`: 5 input neurons, 25 input spikes per sample (each
  coordinate's spike 5 times), time in s (jaxsnn's BrainScaleS-2 time scale);
- 5 inputs -> `Linear(mean=3/5, std=1.6/5)` -> 120 LIF -> `Linear(mean=0.5,
  std=0.8)` -> 3 LIF, no delays (`min_delay=0`); weights from `init_fn(PRNGKey(0))`
  split as in the example;
- LIF: tau_mem = 12e-6 s, tau_syn = 6e-6 s, v_th = 1, v_reset = -1000 (each neuron
  fires at most once), t_max = 4 tau_syn = 24e-6 s;
- event budgets (`n_spikes`, the number of event steps of each layer) as the example
  derives them, for 120 hidden neurons: hidden 120 + 25 = 145 (its 25 input spikes and
  one spike per hidden neuron), output 120 + 3 = 123 (the example: 100 + 25 and 103);
- loss: the example's, `loss_wrapper(apply_fn, mse_loss, tau_mem, "lif2", 3)`, the
  mean over the batch of the squared error of the first output spike times against
  the targets of `target_temporal_encode` (correct class 0.8 * 6e-6 s, others
  1.2 * 6e-6 s); float32.

Timed under `jax.jit`, each blocked until ready: the forward pass of the batch (the
loss value, `apply_fn` under jaxsnn's `jax.vmap` included) and `jax.value_and_grad` of
the loss with respect to the weights, for `backprop_method="eventprop"` (EventProp
adjoint) and `backprop_method="analytical"` (jaxsnn's default: autodiff through the
analytical spike-time solver). First call (compile and run) and the best of
`--repeats` warm calls, in s.
"""

import argparse
import json
import logging
import os
import time
from functools import partial

import jax
import jax.numpy as jnp

HIDDEN, INPUTS, OUTPUTS = 120, 5, 3
TAU_MEM, TAU_SYN, V_TH = 12e-6, 6e-6, 1.0
T_LATE = 2.0 * 6e-6
CORRECT_TARGET, WRONG_TARGET = 0.8 * 6e-6, 1.2 * 6e-6
DUPLICATION = 5
N_SPIKES_HIDDEN = HIDDEN + INPUTS * DUPLICATION
N_SPIKES_OUTPUT = HIDDEN + OUTPUTS


def build(method, seed=0):
    """jaxsnn's layered network for `backprop_method=method`: (init_fn, apply_fn)."""
    from jaxsnn.event.modules import LIF, Linear, Source
    from jaxsnn.event.modules.lif.lif import LIFParameters
    from jaxsnn.event.topology import Topology

    params = LIFParameters(v_reset=-1000.0, v_th=V_TH, tau_syn=TAU_SYN, tau_mem=TAU_MEM)
    builder = Topology(t_max=4.0 * TAU_SYN, backprop_method=method)
    builder.add(
        {
            "inp": Source(INPUTS),
            "lif1": LIF(HIDDEN, N_SPIKES_HIDDEN, params),
            "lif2": LIF(OUTPUTS, N_SPIKES_OUTPUT, params),
            "syn1": Linear(mean=3.0 / 5, std=1.6 / 5, min_delay=0.0),
            "syn2": Linear(mean=0.5, std=0.8, min_delay=0.0),
        }
    )
    builder.connect([("inp", "syn1"), ("syn1", "lif1"), ("lif1", "syn2"), ("syn2", "lif2")])
    return builder.done()


def batch(size, seed=0):
    """`size` Yin-Yang samples encoded as in jaxsnn's example, and the weights' key."""
    from jaxsnn.base.dataset import yinyang_dataset
    from jaxsnn.event.encode import encode, spatio_temporal_encode, target_temporal_encode

    param_rng, data_rng, _ = jax.random.split(jax.random.PRNGKey(seed), 3)
    data = yinyang_dataset(data_rng, size, mirror=True, bias_spike=0.0)
    inputs = jax.jit(
        jax.vmap(
            partial(
                spatio_temporal_encode,
                t_late=T_LATE,
                duplication=DUPLICATION,
                duplicate_neurons=False,
            )
        )
    )
    targets = jax.jit(
        jax.vmap(
            partial(
                target_temporal_encode,
                n_classes=OUTPUTS,
                correct_target_time=CORRECT_TARGET,
                wrong_target_time=WRONG_TARGET,
            )
        )
    )
    spikes, target = encode(data, inputs, targets)
    return ({"inp": spikes}, target), param_rng


def timed(fn, *args, repeats):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        warm.append(time.perf_counter() - start)
    return out, {"first_s": first, "warm_s": warm, "best_s": min(warm)}


def measure(method, data, param_rng, repeats):
    """Forward and value+grad of the example's loss for one backprop method."""
    from jaxsnn.event.loss import mse_loss
    from jaxsnn.examples.event.utils import loss_wrapper

    init_fn, apply_fn = build(method)
    weights = init_fn(param_rng)
    loss_fn = partial(loss_wrapper, apply_fn, mse_loss, TAU_MEM, "lif2", OUTPUTS)
    forward = jax.jit(lambda w, b: loss_fn(w, b))
    grad = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    (loss, (t_first, events)), fwd = timed(forward, weights, data, repeats=repeats)
    ((loss_g, _), grads), vg = timed(grad, weights, data, repeats=repeats)
    leaves = [g for g in jax.tree_util.tree_leaves(grads) if g is not None]
    flat = jnp.concatenate([jnp.ravel(g) for g in leaves])
    hidden = events["lif1"].where(events["lif1"].internal)
    output = events["lif2"].where(events["lif2"].internal)
    return {
        "backprop_method": method,
        "forward": fwd,
        "value_and_grad": vg,
        "loss": float(loss),
        "loss_from_grad": float(loss_g),
        "grad_norm": float(jnp.linalg.norm(flat)),
        "grad_finite": bool(jnp.all(jnp.isfinite(flat))),
        "hidden_spikes_per_sample": float(jnp.mean(jnp.sum(hidden.idx >= 0, axis=-1))),
        "output_spikes_per_sample": float(jnp.mean(jnp.sum(output.idx >= 0, axis=-1))),
        "outputs_silent": float(jnp.mean(~jnp.isfinite(t_first))),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="warm calls per figure")
    parser.add_argument(
        "--methods", nargs="+", default=["eventprop", "analytical"], help="backprop methods"
    )
    args = parser.parse_args()
    import jaxsnn

    logging.getLogger("jaxsnn").setLevel(logging.WARNING)  # not its INFO lines

    data, param_rng = batch(args.batch)
    rows = [measure(method, data, param_rng, args.repeats) for method in args.methods]
    versions = {"jaxsnn": getattr(jaxsnn, "__version__", None), "jax": jax.__version__}
    if versions["jaxsnn"] is None:
        from importlib.metadata import version

        versions["jaxsnn"] = version("jaxsnn")
    config = {
        "batch": args.batch,
        "repeats": args.repeats,
        "layers": [INPUTS, HIDDEN, OUTPUTS],
        "input_spikes_per_sample": INPUTS * DUPLICATION,
        "tau_mem_s": TAU_MEM,
        "tau_syn_s": TAU_SYN,
        "t_max_s": 4.0 * TAU_SYN,
        "n_spikes": [N_SPIKES_HIDDEN, N_SPIKES_OUTPUT],
        "backend": jax.default_backend(),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps({"versions": versions, "config": config, "result": rows}))


if __name__ == "__main__":
    main()
