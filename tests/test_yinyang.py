"""The Yin-Yang example trains (reduced): first-spike training with weight bumping lifts
the test accuracy from chance (33%) to above 75% in a few epochs, the output neurons
keep firing, and the weights kept are those of the best validation epoch."""

import os
import sys

import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

import yinyang  # noqa: E402


def test_data_set_follows_its_definition():
    """Points lie in the disc; each class region is where the formula puts it; the
    classes are balanced."""
    points, labels = yinyang.yinyang(600, seed=3)
    p = np.asarray(points)
    assert np.all(np.hypot(p[:, 0] - 0.5, p[:, 1] - 0.5) <= 0.5)
    assert np.all(np.bincount(np.asarray(labels), minlength=3) > 150)
    # The dots: within 0.1 of (0.25, 0.5) or (0.75, 0.5), and only there.
    dots = (np.hypot(p[:, 0] - 0.25, p[:, 1] - 0.5) < 0.1) | (
        np.hypot(p[:, 0] - 0.75, p[:, 1] - 0.5) < 0.1
    )
    np.testing.assert_array_equal(dots, np.asarray(labels) == 2)
    # Upper half outside the dots' neighbourhoods: yin on the left of the
    # right-hand lobe, i.e. far from (0.75, 0.5) counts as yin.
    assert yinyang._which_class(0.5, 0.95) == 0
    assert yinyang._which_class(0.5, 0.05) == 1


def test_bumping_raises_the_silent_neurons_only():
    """A batch with too many silent hidden neurons bumps the input weights of those
    neurons (and no others), and the bump doubles when the hidden layer needs it again
    in the next batch; a batch where every neuron fires bumps nothing."""
    params = (jnp.zeros((5, 120)), jnp.zeros((121, 3)))
    hidden = jnp.where(jnp.arange(120) < 60, jnp.inf, 1.0)[None].repeat(4, 0)
    out = jnp.ones((4, 3))
    bumped, (w_in, w_out), state = yinyang.bump_silent(
        params, hidden, out, yinyang.Bumping.start()
    )
    assert bool(bumped) and int(state.layer) == 0
    np.testing.assert_allclose(w_in[:, :60], yinyang.BUMP)
    np.testing.assert_array_equal(w_in[:, 60:], 0.0)
    np.testing.assert_array_equal(w_out, 0.0)
    _, (w_in, _), state = yinyang.bump_silent((w_in, w_out), hidden, out, state)
    np.testing.assert_allclose(w_in[:, :60], 3 * yinyang.BUMP)
    bumped, same, _ = yinyang.bump_silent(params, jnp.ones((4, 120)), out, state)
    assert not bool(bumped)
    np.testing.assert_array_equal(same[0], params[0])


def test_selection_looks_at_the_validation_accuracy_only():
    """The kept epoch has the best validation accuracy (the later one on ties),
    whatever the test accuracy; without a validation set, the last epoch."""

    def row(epoch, test, val):
        return (epoch, 0.1, 0.9, test, 1.0, (0, 0), val)

    history = [
        row(1, 0.99, 0.90),
        row(2, 0.80, 0.95),
        row(3, 0.97, 0.95),
        row(4, 0.99, 0.9),
    ]
    assert yinyang.selected_epoch(history)[0] == 3
    history = [row(e, 0.9, float("nan")) for e in range(1, 4)]
    assert yinyang.selected_epoch(history)[0] == 3


def test_training_learns_without_silent_outputs():
    lines = []
    params, history = yinyang.train(
        epochs=6,
        train_size=1000,
        test_size=500,
        val_size=500,
        batch_size=50,
        log=lines.append,
    )
    assert len(lines) == 6
    test_accuracy = history[-1][3]
    assert test_accuracy > 0.75, lines
    # The returned weights are those of the best validation epoch: their test accuracy
    # is that epoch's.
    chosen = yinyang.selected_epoch(history)
    assert chosen[6] == max(h[6] for h in history)
    points, labels = yinyang.yinyang(500, seed=40)
    assert yinyang.accuracy(params, points, labels) == chosen[3]
    classes = np.asarray(yinyang.predict(params, points))
    # No collapse into silence: weight bumping keeps the outputs firing.
    assert np.mean(classes == -1) < 0.05, lines
