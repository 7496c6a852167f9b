"""Real documents with a value anywhere replaced: what the fuzz tests feed each reader of JSON.

Mutating real examples (a device's payload, an Octopus response, the shipped model) keeps the shapes
the readers really meet, so the generated cases reach deep into them instead of failing at the top.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: Any JSON value, small: what a field may be replaced with.
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats()
                           | st.text(max_size=6), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)


def mutated(value: Any, data: st.DataObject, values: st.SearchStrategy[Any] = JSON_VALUES, descend_at_least: int = 0,
            _depth: int = 0) -> Any:
    """``value`` with one field, at a depth drawn by ``data``, replaced by one of ``values`` (the containers on the
    way copied, ``value`` untouched). ``descend_at_least`` levels are always gone down where there are any, so a
    large document is not mostly replaced whole at its top."""
    go_down = _depth < descend_at_least or data.draw(st.booleans())
    if isinstance(value, dict | list) and value and go_down:
        key = data.draw(st.sampled_from(sorted(value) if isinstance(value, dict) else range(len(value))))
        copy: Any = dict(value) if isinstance(value, dict) else list(value)
        copy[key] = mutated(value[key], data, values, descend_at_least, _depth + 1)
        return copy
    return data.draw(values)
