"""Config dataclasses to JSON-ready dicts and back, by their type hints.

``config_to_dict`` turns a (nested) frozen dataclass into plain values: paths as text, tuples as
lists, nested dataclasses as dicts. ``config_from_dict(cls, data)`` rebuilds it, converting each
value to its field's annotated type (``Path``, ``X | None``, ``tuple[X, ...]``, ``Literal``,
nested dataclasses, int/float/bool/str) so the dataclass's own checks run on the result.
Unknown keys are an error (a config written by a newer version, or a typo); missing keys take
the field's default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from spinfits.errors import InputError


def config_to_dict(config: Any) -> Any:
    """A JSON-ready copy of ``config`` (a dataclass, or a value inside one)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {item.name: config_to_dict(getattr(config, item.name)) for item in dataclasses.fields(config)}
    if isinstance(config, (tuple, list)):
        return [config_to_dict(value) for value in config]
    if isinstance(config, Path):
        return str(config)
    return config


def config_from_dict(cls: type, data: Any, where: str = "") -> Any:
    """An instance of dataclass ``cls`` from ``data`` (what ``config_to_dict`` wrote)."""
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise InputError(f"{where} must be a JSON object of its fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {item.name: item for item in dataclasses.fields(cls) if item.init}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{where} has no field(s) {unknown}; known fields: {sorted(known)}")
    values = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        return _convert(options[0], value, where) if len(options) == 1 else value
    if origin is typing.Literal:
        if value not in args:
            raise InputError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise InputError(f"{where} must be a list, got {type(value).__name__}")
        item = args[0] if args else Any
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value, where)
    if hint is Path:
        if not isinstance(value, str):
            raise InputError(f"{where} must be a path (text), got {value!r}")
        return Path(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint in (int, bool, str) and not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise InputError(f"{where} must be {hint.__name__}, got {value!r}")
    return value
