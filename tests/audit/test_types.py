"""audit/types.py: ``Intent``'s written-out ``__init__`` (issue 11) takes every field, in
the fields' order, with their defaults, sets each, and the instance stays frozen."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from audit import Intent


def test_the_written_out_init_takes_and_sets_every_field() -> None:
    fields = dataclasses.fields(Intent)
    params = list(inspect.signature(Intent.__init__).parameters.values())[1:]
    assert [p.name for p in params] == [f.name for f in fields]
    for param, field in zip(params, fields, strict=True):
        default = inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        assert param.default == default, field.name
    values = {f.name: object() for f in fields}
    intent = Intent(**values)  # type: ignore[arg-type]
    assert {name: getattr(intent, name) for name in values} == values
    assert dataclasses.replace(intent, actor="other").actor == "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        intent.actor = "changed"  # type: ignore[misc]
