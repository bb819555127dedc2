"""Saving and loading models, networks and results.

- `save(path, obj)` / `load(path, like=...)`: any neurosim PyTree (a model, a
    `Network`, a `Population`) in one file: a header (file format version, neurosim
    version, class name, tree structure, and the shape and dtype of every array),
    then the arrays as written by `equinox.tree_serialise_leaves`.
- `Solution.save(path)` / `load_solution(path)`: a result in a folder of portable
    files: `spikes.csv` (time, population, neuron) and `solution.npz` (record times,
    state traces, final state and the run's counters), readable without neurosim.
"""

import csv
import json
import pathlib
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

# Raise when the layout of a file changes; `load` refuses files of a newer format.
FORMAT_VERSION = 1
_MAGIC = b"neurosim\n"


def _version() -> str:
    from . import __version__

    return __version__


def _structure(tree) -> str:
    """The tree structure as text, with the addresses of objects held as static fields
    removed (they differ from one process to the next)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", str(jax.tree.structure(tree)))


def _arrays(tree) -> list[dict]:
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(leaf, (jax.Array, np.ndarray)):
            out.append(
                {
                    "path": jax.tree_util.keystr(path),
                    "shape": list(leaf.shape),
                    "dtype": str(leaf.dtype),
                }
            )
    return out


def save(path, obj) -> pathlib.Path:
    """Write a model, `Population` or `Network` (any PyTree of neurosim's) to `path`.

    **Arguments:**

    - `path`: the file to write (a str or `pathlib.Path`; written as given).
    - `obj`: what to save, e.g. `neurosim.LIF(tau_mem=jnp.array([8.0, 12.0]))`.

    **Returns:** the path written. Read it back with `neurosim.load(path, like=...)`.

    **Example:**

    ```python
    ns.save("lif.eqx", ns.LIF(tau_mem=12.0))
    neuron = ns.load("lif.eqx", like=ns.LIF())
    ```
    """
    path = pathlib.Path(path)
    header = {
        "format": FORMAT_VERSION,
        "neurosim": _version(),
        "class": type(obj).__name__,
        "structure": _structure(obj),
        "arrays": _arrays(obj),
    }
    with open(path, "wb") as f:
        f.write(_MAGIC)
        f.write(json.dumps(header).encode() + b"\n")
        eqx.tree_serialise_leaves(f, obj)
    return path


def _read_header(f, path) -> dict:
    if f.read(len(_MAGIC)) != _MAGIC:
        raise ValueError(
            f"load: {str(path)!r} is not a file written by neurosim.save (no header)."
        )
    header = json.loads(f.readline())
    if header["format"] > FORMAT_VERSION:
        raise ValueError(
            f"load: {str(path)!r} has file format {header['format']} (written by neurosim "
            f"{header['neurosim']}); this neurosim {_version()} reads format "
            f"{FORMAT_VERSION} and older. Upgrade neurosim to read it."
        )
    return header


def load(path, like):
    """Read what `neurosim.save` wrote.

    **Arguments:**

    - `path`: the file.
    - `like`: an object of the same class and structure as the saved one: same static
        settings (e.g. `reset_mode`), same populations and projections for a
        `Network`. Its array values and shapes do not matter: `ns.LIF()` loads a LIF
        saved with one time constant per neuron.

    **Returns:** the saved object.

    **Raises:** `ValueError` when the file is not neurosim's, has a newer format than
    this neurosim reads, or holds another class or structure than `like`.
    """
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        header = _read_header(f, path)
        kind = type(like).__name__
        if header["class"] != kind:
            raise ValueError(
                f"load: {str(path)!r} holds a {header['class']}, but `like` is a {kind}. "
                f"Pass `like` of the saved class, e.g. like=neurosim.{header['class']}()."
            )
        if header["structure"] != _structure(like):
            raise ValueError(
                f"load: {str(path)!r} holds a {kind} whose structure differs from `like` "
                f"(static settings, populations or projections).\n  saved: "
                f"{header['structure']}\n  like:  {_structure(like)}\nBuild `like` as the "
                "saved object was built."
            )
        leaves, treedef = jax.tree.flatten(like)
        arrays = iter(header["arrays"])
        template = []
        for leaf in leaves:
            if isinstance(leaf, jax.Array):
                saved = next(arrays)
                leaf = jax.ShapeDtypeStruct(
                    tuple(saved["shape"]), jnp.dtype(saved["dtype"])
                )
            elif isinstance(leaf, np.ndarray):
                next(arrays)
            template.append(leaf)
        try:
            return eqx.tree_deserialise_leaves(f, jax.tree.unflatten(treedef, template))
        except RuntimeError as error:
            raise ValueError(
                f"load: {str(path)!r} could not be read as `like`: {error} (a float64 "
                "file needs jax_enable_x64 switched on)."
            ) from error


# ------------------------------------------------------------------------- solutions

_SPIKES, _ARRAYS = "spikes.csv", "solution.npz"
_SCALARS = (
    "t0",
    "t_final",
    "num_spikes",
    "overflow",
    "status",
    "iterations",
    "solver_steps",
)


def _named(tree, prefix: str) -> dict[str, np.ndarray]:
    """The arrays of a state PyTree by name: `prefix/population/field`."""
    named = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = [
            str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path
        ]
        named["/".join([prefix, *parts])] = np.asarray(leaf)
    return named


def _nested(arrays: dict, prefix: str):
    """The inverse of `_named`: nested dicts by population and field (None if empty)."""
    out = {}
    for key, value in arrays.items():
        if not key.startswith(prefix + "/"):
            continue
        *outer, last = key[len(prefix) + 1 :].split("/")
        node = out
        for part in outer:
            node = node.setdefault(part, {})
        node[last] = value
    return out or None


def _spike_table(solution):
    """The spikes as `(times, population names, indices within the population)`."""
    times, neurons = solution.spikes()
    names = np.full(len(neurons), "", dtype=object)
    local = neurons.copy()
    for name, offset, size in solution.populations or ():
        mine = (neurons >= offset) & (neurons < offset + size)
        names[mine] = name
        local[mine] = neurons[mine] - offset
    return times, names, local


def save_solution(solution, path) -> pathlib.Path:
    """Write `solution` to the folder `path` (created if needed): `spikes.csv` with
    columns `time` (ms), `population` (empty for a single population) and `neuron`
    (index within its population), and `solution.npz` with the record times `ts`,
    the traces `states/<population>/<field>` (one row per record time), the
    `final_state/...`, and the run's counters. `load_solution(path)` reads it back."""
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    times, names, local = _spike_table(solution)
    with open(path / _SPIKES, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["time", "population", "neuron"])
        # repr of the float is exact: the file reloads bit for bit.
        writer.writerows(
            (repr(float(t)), name, int(k)) for t, name, k in zip(times, names, local)
        )
    meta = {
        "format": FORMAT_VERSION,
        "neurosim": _version(),
        "max_spikes": int(solution.spike_times.shape[0]),
        "time_dtype": str(solution.spike_times.dtype),
        "populations": solution.populations,
    }
    arrays = {name: np.asarray(getattr(solution, name)) for name in _SCALARS}
    arrays.update(_named(solution.states, "states"))
    arrays.update(_named(solution.final_state, "final_state"))
    np.savez(path / _ARRAYS, ts=np.asarray(solution.ts), meta=json.dumps(meta), **arrays)
    return path


def load_solution(path):
    """Read a `Solution` written by `Solution.save(path)`.

    Its spikes, counters and record times equal the saved ones bit for bit; its
    `states` and `final_state` are nested dicts of arrays (`states["hidden"]["v"]`, or
    `states["v"]` for a single population) instead of the model's state classes. The
    methods that read spikes (`spikes`, `rates`, `spike_trains`, ...) work as before.
    """
    from ._solution import Solution

    path = pathlib.Path(path)
    with np.load(path / _ARRAYS, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    if meta["format"] > FORMAT_VERSION:
        raise ValueError(
            f"load_solution: {str(path)!r} has format {meta['format']}; this neurosim "
            f"reads format {FORMAT_VERSION} and older. Upgrade neurosim to read it."
        )
    populations = meta["populations"]
    offsets = {name: offset for name, offset, _ in populations or ()}
    with open(path / _SPIKES, newline="") as f:
        rows = list(csv.DictReader(f))
    dtype = np.dtype(meta["time_dtype"])
    count, size = len(rows), meta["max_spikes"]
    spike_times = np.full(size, np.inf, dtype)
    spike_neurons = np.full(size, -1, np.int32)
    spike_times[:count] = [float(row["time"]) for row in rows]
    spike_neurons[:count] = [
        int(row["neuron"]) + offsets.get(row["population"], 0) for row in rows
    ]
    return Solution(
        spike_times=jnp.asarray(spike_times),
        spike_neurons=jnp.asarray(spike_neurons),
        ts=jnp.asarray(arrays.pop("ts")),
        states=_nested(arrays, "states"),
        final_state=_nested(arrays, "final_state"),
        populations=None
        if populations is None
        else tuple((name, offset, size) for name, offset, size in populations),
        **{name: jnp.asarray(arrays[name]) for name in _SCALARS},
    )


def solution_dataframe(solution):
    """The spikes of `solution` as a `pandas.DataFrame` with columns `time` (ms),
    `population` and `neuron` (index within its population)."""
    try:
        import pandas as pd
    except ImportError as error:
        raise ImportError(
            "Solution.to_dataframe needs pandas (pip install pandas); Solution.save "
            "writes the same table as CSV without it."
        ) from error
    times, names, local = _spike_table(solution)
    return pd.DataFrame({"time": times, "population": names, "neuron": local})
