"""A model's `repr` shows its parameter values: scalars as numbers, small arrays as
lists (both read back by `eval`), large arrays as shape and dtype with a summary."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np

import neurosim as ns

NAMES = {
    "LIF": ns.LIF,
    "CubaLIF": ns.CubaLIF,
    "Izhikevich": ns.Izhikevich,
    "AdaptiveCurrent": ns.AdaptiveCurrent,
    "inf": np.inf,
}


def _assert_same_parameters(a, b):
    assert type(a) is type(b)
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if dataclasses.is_dataclass(x):
            _assert_same_parameters(x, y)
        elif x is None or isinstance(x, str):
            assert x == y, field.name
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=field.name)


def test_scalar_and_small_array_parameters_read_back_by_eval():
    models = [
        ns.LIF(),
        ns.LIF(tau_mem=12.5, v_th=0.1, v_reset=-0.3, t_ref=2.0, reset_mode="soft"),
        ns.CubaLIF(tau_mem=[20.0, 25.0], v_th=-50.0, v_reset=-60.0, v_leak=-49.0),
        ns.Izhikevich(a=0.02, b=0.25, c=-65.0, d=jnp.array([[6.0, 2.0], [8.0, 0.05]])),
        ns.AdaptiveCurrent(
            ns.LIF(t_ref=2.0),
            tau_adapt=[50.0, 500.0],
            voltage_coupling=0.0,
            spike_increment=0.1,
        ),
    ]
    for model in models:
        text = repr(model)
        assert "f32[" not in text and "f64[" not in text, text
        _assert_same_parameters(eval(text, dict(NAMES)), model)


def test_float32_values_print_as_their_shortest_decimal():
    text = repr(ns.LIF(v_th=0.1))
    assert re.search(r"\bv_th=0\.1\b", text), text


def test_large_arrays_show_dtype_shape_and_summary():
    v_th = np.linspace(-55.0, -50.0, 100) ** 2 / 50.0
    text = repr(ns.LIF(v_th=v_th, v_reset=-100.0))
    match = re.search(
        r"v_th=f32\[100\]\(min=(\S+), mean=(\S+), max=(\S+)\)", text.replace("\n", " ")
    )
    assert match, text
    summary = [float(value) for value in match.groups()]
    expected = [v_th.min(), v_th.mean(), v_th.max()]
    np.testing.assert_allclose(summary, expected, rtol=1e-6)


def test_traced_parameters_show_dtype_and_shape():
    texts = []

    def first_spike(tau):
        texts.append(repr(ns.LIF(tau_mem=tau)))
        return tau

    jax.jit(first_spike)(10.0)
    assert re.search(r"tau_mem=f32\[\]", texts[0]), texts[0]


def test_a_population_shows_its_model_and_current_values():
    text = repr(ns.Population(ns.LI(tau_mem=7.0), 3, current=1.5))
    assert "tau_mem=7.0" in text and "value=1.5" in text, text
