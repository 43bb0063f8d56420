"""Options that fill a config dataclass: defaults read from the dataclass, messages in flags.

A subcommand whose options fill a config dataclass (``TrainConfig``, ``PrecomputeConfig``)
takes each option's default from the dataclass (``default_of``), so the two cannot drift, and
keeps one mapping from field to flag. The dataclass's messages name its fields ("batch_size must
be >= 1, got 0"); ``make_config`` builds the config and tells such a message in the flags the
user typed ("--batch (batch_size) must be >= 1, got 0").
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from spinfits.errors import InputError

log = logging.getLogger(__name__)

Config = TypeVar("Config")


def default_of(config_class: type, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``config_class`` (a default factory is
    called). Raises ``ValueError`` for a field that does not exist or has no default."""
    for item in dataclasses.fields(config_class):
        if item.name == name:
            if item.default is not dataclasses.MISSING:
                return item.default
            if item.default_factory is not dataclasses.MISSING:
                return item.default_factory()
            raise ValueError(f"{config_class.__name__}.{name} has no default")
    raise ValueError(f"{config_class.__name__} has no field {name!r}")


def flag_label(name: str, flag: str) -> str:
    """``--flag (field)``, or just ``--flag`` where the flag is the field's name."""
    return flag if flag == "--" + name.replace("_", "-") else f"{flag} ({name})"


def in_flags(message: str, flags: Mapping[str, str]) -> str:
    """``message`` of a config dataclass with its fields told as command-line flags: a leading
    "FIELD must ..." or "FIELD: ..." becomes "--flag (FIELD) must ...", and a field named with
    an underscore (unambiguous as a word) or in backticks (`resume`) becomes its flag anywhere
    else in the message."""
    label = ""
    for name, flag in flags.items():
        if re.match(rf"{re.escape(name)}(?= must\b|:)", message):
            label, message = flag_label(name, flag), message[len(name) :]
            break
    for name, flag in flags.items():
        message = message.replace(f"`{name}`", flag)
        if "_" in name:
            message = re.sub(rf"(?<![\w-]){re.escape(name)}(?!\w)", flag, message)
    return label + message


def make_config(config_class: type[Config], flags: Mapping[str, str], **values: Any) -> Config:
    """``config_class(**values)``; its ``InputError`` comes back with fields told as flags."""
    try:
        return config_class(**values)
    except InputError as error:
        raise InputError(in_flags(str(error), flags)) from None


@contextlib.contextmanager
def flags_in_errors(flags: Mapping[str, str]) -> Iterator[None]:
    """Run a job whose ``InputError`` messages name its config's fields; they come back with the
    fields told as the flags that set them (``in_flags``)."""
    try:
        yield
    except InputError as error:
        raise InputError(in_flags(str(error), flags)) from None


class DeprecatedAlias(argparse.Action):
    """A hidden old spelling of an option: stores into the new option's ``dest`` and warns
    (add it with ``help=argparse.SUPPRESS`` and ``default=argparse.SUPPRESS``)."""

    def __init__(self, option_strings, dest, replacement: str, **kwargs):
        self.replacement = replacement
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        log.warning("%s is deprecated: use %s", option_string, self.replacement)
        setattr(namespace, self.dest, values)
