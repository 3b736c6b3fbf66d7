"""Command-line helpers shared by every entry point.

Each flag is accepted in both spellings, `--num_classes` (the training guide's) and `--num-classes`
(Ray's CLI style). Dataclass fields become flags with their types, and the comment on a field's line
becomes its help, so a new config field is a new flag with no other edit.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import re
import sys
import tokenize
import types
import typing
from typing import Any


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one `error:` line naming the fix, not a usage block."""

    def error(self, message: str) -> typing.NoReturn:
        fail(f"{message} (see {self.prog} --help)")


def flag_names(name: str) -> list[str]:
    """`num_classes` -> ['--num_classes', '--num-classes'] (one spelling if the name has no '_')."""
    under, hyphen = "--" + name.replace("-", "_"), "--" + name.replace("_", "-")
    return [under] if under == hyphen else [under, hyphen]


def add_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, **kwargs) -> None:
    kwargs.setdefault("dest", name.replace("-", "_"))
    parser.add_argument(*flag_names(name), **kwargs)


def field_reasons(cls: type) -> dict[str, str]:
    """Each dataclass field's one-line reason: the comment on its line in the class's source
    (`lr: float = 1e-3  # guide default; ...`). The config states each reason once, beside its
    default, and `--help` shows it."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(inspect.getsource(cls)).readline))
    except (OSError, TypeError, tokenize.TokenError):  # no source to read: help without reasons
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    reasons: dict[str, str] = {}
    for tok in tokens:
        field = re.match(r"    (\w+)\s*:", tok.line) if tok.type == tokenize.COMMENT else None
        if field and field[1] in names:
            reasons.setdefault(field[1], tok.string.lstrip("#").strip())
    return reasons


def add_dataclass_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, skip: tuple[str, ...] = ()
) -> list[str]:
    """A flag per field of dataclass `cls`, defaulting to None (= "not given", so presets and config
    files can fill it). Booleans get `--x/--no-x`. Returns the field names added."""
    hints = typing.get_type_hints(cls)
    reasons = field_reasons(cls)
    added = []
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp = hints[f.name]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):  # `str | None`: a str flag
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        default = f.default if f.default is not dataclasses.MISSING else None
        reason = reasons.get(f.name, "").replace("%", "%%")  # argparse %-formats help
        help_ = f"{reason} (default: {default})".lstrip()
        choices = typing.get_args(tp) if typing.get_origin(tp) is typing.Literal else None
        if tp is bool:
            parser.add_argument(
                *flag_names(f.name),
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_,
            )
        elif choices:
            add_flag(parser, f.name, type=type(choices[0]), choices=choices, default=None, help=help_)
        elif tp in (int, float, str):
            add_flag(parser, f.name, type=tp, default=None, help=help_)
        else:
            continue  # structured fields are not flags
        added.append(f.name)
    return added


def add_feature_flags(parser: argparse.ArgumentParser) -> list[str]:
    """A flag per FeatureConfig field (`--n_mels 128`, `--face_detector haar`, ...), in a group of its
    own: set over the preset's features. Returns the field names added."""
    from emo.config import FeatureConfig

    return add_dataclass_flags(parser.add_argument_group("feature settings (override the preset)"), FeatureConfig)


def given_features(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """{"features": {...}} with the feature flags passed (TrainConfig.features), or {} when none was."""
    features = given(args, names)
    return {"features": features} if features else {}


def given(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The subset of `names` the user actually passed on the command line."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def fail(message: str, code: int = 2) -> typing.NoReturn:
    """One line on stderr and a non-zero exit: how every entry point reports a user's mistake."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
