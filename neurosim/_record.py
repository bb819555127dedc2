"""`Record`: the recorded fields of a state, read as attributes (or keys)."""

from collections.abc import Iterator, Mapping

import jax.tree_util as jtu


class Record(Mapping):
    """The state fields that `simulate(..., record_fields=...)` recorded, read like the
    model's state: `record.v`. It is also a read-only mapping (`record["v"]`, `list(record)`)
    and a PyTree, so `jax.tree.map` and `jax.vmap` see its arrays.

    Without `record_fields` the records are the model's own state class, also read as
    `states.v`: one style for both.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping):
        object.__setattr__(self, "_fields", dict(fields))

    def __getattr__(self, name: str):
        if name == "_fields":
            raise AttributeError(name)
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(
                f"Record: the field {name!r} was not recorded (recorded: "
                f"{list(self._fields)}). Name it in `record_fields`, or leave "
                "`record_fields` out to record every field."
            ) from None

    def __setattr__(self, name, value):
        raise AttributeError("Record is read-only.")

    def __getitem__(self, name: str):
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __dir__(self):
        return list(self._fields)

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={_short(value)}" for name, value in self._fields.items()
        )
        return f"Record({fields})"


def _short(value) -> str:
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None or dtype is None:
        return repr(value)
    return f"{dtype}{list(shape)}"


def _flatten_with_keys(record: Record):
    names = tuple(record._fields)
    return [(jtu.GetAttrKey(name), record._fields[name]) for name in names], names


def _flatten(record: Record):
    names = tuple(record._fields)
    return [record._fields[name] for name in names], names


def _unflatten(names, values) -> Record:
    return Record(zip(names, values))


jtu.register_pytree_with_keys(Record, _flatten_with_keys, _unflatten, _flatten)
