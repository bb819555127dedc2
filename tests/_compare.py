"""Shared assertions: two simulations give the same spikes; where two spike lists
first differ."""

import dataclasses

import numpy as np


def assert_same_spikes(actual, expected, *, at_least: int, atol: float):
    """The same number of spikes (at least `at_least`), from the same neurons in the
    same order, at times within `atol` ms."""
    assert int(actual.num_spikes) == int(expected.num_spikes) >= at_least
    np.testing.assert_array_equal(actual.spike_neurons, expected.spike_neurons)
    finite = np.isfinite(np.asarray(expected.spike_times))
    np.testing.assert_allclose(
        np.asarray(actual.spike_times)[finite],
        np.asarray(expected.spike_times)[finite],
        rtol=0,
        atol=atol,
    )


@dataclasses.dataclass
class Agreement:
    """How two spike lists compare (see `first_divergence`)."""

    divergence: float  # the first time they differ; inf when they agree throughout
    what: str  # at the divergence: which neuron, which spikes
    matched: int  # spikes matched (within `atol`) before the divergence
    max_dt: float  # the largest time difference over those matched spikes
    counts: tuple  # (spikes of a, spikes of b)
    max_dt_before: dict = dataclasses.field(default_factory=dict)  # time -> max_dt

    @property
    def agree(self) -> bool:
        return self.divergence == np.inf

    def __str__(self) -> str:
        head = (
            "agree throughout"
            if self.agree
            else f"first divergence at {self.divergence:.9g} ms ({self.what})"
        )
        return (
            f"{head}; {self.matched} spikes matched before it, max |dt| "
            f"{self.max_dt:.3g} ms; {self.counts[0]} vs {self.counts[1]} spikes"
        )


def first_divergence(a, b, *, atol: float, t1: float | None = None, windows=()):
    """Walks two spike lists (`a`, `b`: pairs `(times, neurons)`, each sorted by time)
    in time order and returns an `Agreement` with the first time at which they differ.

    The k-th spike of a neuron in `a` is matched with that neuron's k-th spike in `b`;
    they differ where the two times are more than `atol` ms apart (the divergence is
    at the earlier of the two), or where one list has a spike the other lacks (at
    that spike's time; a spike within `atol` of `t1` may be missing from the other
    list, which may have put it just after `t1`). Spikes of different neurons closer
    than `atol` may come in either order. `windows`: times T for which
    `max_dt_before[T]` reports the largest difference over the spikes before T."""
    ta, ka = (np.asarray(x) for x in a)
    tb, kb = (np.asarray(x) for x in b)
    assert np.all(np.diff(ta) >= 0) and np.all(np.diff(tb) >= 0), "unsorted spikes"
    oa, ob = np.lexsort((ta, ka)), np.lexsort((tb, kb))  # by neuron, then time
    divergence, what = np.inf, ""
    pairs_t, pairs_dt = [], []
    neurons = np.union1d(ka, kb)
    starts_a = np.searchsorted(ka[oa], neurons, "left")
    ends_a = np.searchsorted(ka[oa], neurons, "right")
    starts_b = np.searchsorted(kb[ob], neurons, "left")
    ends_b = np.searchsorted(kb[ob], neurons, "right")
    for k, sa, ea, sb, eb in zip(neurons, starts_a, ends_a, starts_b, ends_b):
        xa, xb = ta[oa[sa:ea]], tb[ob[sb:eb]]
        m = min(len(xa), len(xb))
        dt = np.abs(xa[:m] - xb[:m])
        pairs_t.append(np.minimum(xa[:m], xb[:m]))
        pairs_dt.append(dt)
        bad = np.flatnonzero(dt > atol)
        if bad.size:
            j = bad[0]
            when = min(xa[j], xb[j])
            if when < divergence:
                divergence = when
                what = (
                    f"neuron {k}, spike {j}: {xa[j]!r} vs {xb[j]!r} ms, "
                    f"|dt| {dt[j]:.3g} > {atol:g}"
                )
        elif len(xa) != len(xb):
            extra = xa[m] if len(xa) > m else xb[m]
            if t1 is not None and extra >= t1 - atol:
                continue
            if extra < divergence:
                divergence = extra
                where = "a" if len(xa) > m else "b"
                what = f"neuron {k}: spike {m} at {extra!r} ms only in {where}"
    times = np.concatenate(pairs_t) if pairs_t else np.zeros(0)
    dts = np.concatenate(pairs_dt) if pairs_dt else np.zeros(0)
    before = times < divergence
    max_dt = float(dts[before].max()) if before.any() else 0.0
    by_window = {
        float(T): float(dts[times < min(T, divergence)].max(initial=0.0)) for T in windows
    }
    return Agreement(
        divergence, what, int(before.sum()), max_dt, (len(ta), len(tb)), by_window
    )
