"""Options that fill a config dataclass: defaults read from the dataclass, messages in flags.

A subcommand whose options fill a config dataclass (``TrainConfig``, ``PrecomputeConfig``)
takes each option's default from the dataclass (``default_of``), so the two cannot drift, and
keeps one mapping from field to flag. The dataclass's messages name its fields ("batch_size must
be >= 1, got 0"); ``make_config`` builds the config and tells such a message in the flags the
user typed ("--batch (batch_size) must be >= 1, got 0").

Also the helpers every command group shares (so no command module imports another): the s3
options of a store (``add_s3_arguments``, ``s3_options``), opening a store (``open_store``), text
tables (``table``) and commit times (``utc_time``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import logging
import re
import sys
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


# ------------------------------------------------------- stores: opening, s3 options, tables
def add_s3_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of s3:// stores (shared by every command that opens a store)."""
    s3 = parser.add_argument_group("object storage (s3:// stores; credentials from the AWS chain)")
    s3.add_argument("--endpoint-url", help="S3-compatible endpoint, e.g. http://127.0.0.1:9000")
    s3.add_argument("--region", help="S3 region")
    s3.add_argument("--allow-http", action="store_true", help="allow an http:// endpoint")
    s3.add_argument("--force-path-style", action="store_true", help="endpoint/bucket/key addressing")
    s3.add_argument("--anonymous", action="store_true", help="unsigned requests")


def s3_options(args: argparse.Namespace):
    """The ``S3Options`` given on the command line (see ``add_s3_arguments``)."""
    from spinfits.store import S3Options

    return S3Options(
        endpoint_url=args.endpoint_url,
        region=args.region,
        allow_http=args.allow_http,
        force_path_style=args.force_path_style,
        anonymous=args.anonymous,
    )


def open_store(args: argparse.Namespace, body_model: str | None = None):
    """The store at ``args.store`` (an s3:// store with the ``add_s3_arguments`` options)."""
    from spinfits.store import FitStore

    return FitStore.open(args.store, body_model=body_model, s3=s3_options(args))


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """Left-aligned text table."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def utc_time(moment: datetime.datetime) -> str:
    """A commit's time as the store commands print it: ``2026-12-05 09:10:00 UTC``."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


#: The one convention of ``store show / eval / report``: the positional DATASET is a dataset's
#: name in the store, ``--npz`` its SPIN .npz file; ``--dataset`` (the file, before) still works
#: and warns.
NPZ_HELP = "the dataset's SPIN .npz file (DATASET is its name in the store)"


def add_npz_argument(parser: argparse.ArgumentParser, help: str = NPZ_HELP, *, repeat: bool = False) -> None:
    """``--npz`` (dest ``npz``) and the deprecated ``--dataset`` (hidden) that names the same file."""
    action = "append" if repeat else "store"
    metavar = "NAME=DATA.npz" if repeat else "DATA.npz"
    parser.add_argument("--npz", action=action, metavar=metavar, help=help)
    parser.add_argument("--dataset", action=action, dest="deprecated_dataset", help=argparse.SUPPRESS)


def npz_of(args: argparse.Namespace, command: str, *, required: bool = True) -> Any:
    """The ``--npz`` value(s) of ``args``, with the deprecated ``--dataset`` merged in (a warning
    on stderr); an ``InputError`` when neither is given and ``required``."""
    npz, deprecated = args.npz, args.deprecated_dataset  # lists with repeat=True (None when absent)
    if deprecated:
        example = deprecated[0] if isinstance(deprecated, list) else deprecated
        print(
            f"warning: `spinfits {command} --dataset {example}` is deprecated: the file is --npz "
            f"{example} (DATASET, the positional, is the dataset's name in the store)",
            file=sys.stderr,
        )
        if isinstance(deprecated, list):
            npz = [*(npz or []), *deprecated]
        elif npz is not None:
            raise InputError(f"--npz {npz} and --dataset {deprecated} both name the file: give --npz once")
        else:
            npz = deprecated
    if required and not npz:
        raise InputError(
            f"`spinfits {command}` needs --npz DATA.npz: the SPIN .npz file of the store's dataset"
        )
    return npz
