"""Typed configuration: dataclasses loaded from YAML, with dotted command-line overrides.

Every config class is a dataclass whose fields carry one docstring each (a string literal
right under the field, as in litgpt's ``args.py``). That docstring is the ``--help`` text
and the only description of the field, so help is never written twice.

Unknown keys are errors that name the key and list the known ones.

A config whose sections come from a registry (the run config's per-approach settings, the
LLM config's per-backend settings) declares ``dynamic_sections() -> {name: dataclass}`` and a
``sections`` field: those keys are parsed into their dataclass and kept there, and `to_dict`
and `describe` show them as ordinary nested keys.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dispute_classifier.core.errors import UserError

T = TypeVar("T")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Return ``{field: docstring}`` read from the class source (the literal under each field)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for node, following in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _resolve_type(tp: Any) -> tuple[Any, bool]:
    """Strip ``Optional``; return (inner type, whether None is allowed)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        allows_none = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], allows_none
        return tp, allows_none
    return tp, False


def _coerce(value: Any, tp: Any, key: str) -> Any:
    inner, allows_none = _resolve_type(tp)
    if value is None:
        if allows_none:
            return None
        raise UserError(f"config key '{key}' may not be empty (null)")
    if dataclasses.is_dataclass(inner):
        if not isinstance(value, dict):
            raise UserError(f"config key '{key}' must be a mapping, got {value!r}")
        return from_dict(inner, value, prefix=f"{key}.")
    origin = typing.get_origin(inner)
    if inner is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"config key '{key}' must be true or false, got {value!r}")
    if inner is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UserError(f"config key '{key}' must be a whole number, got {value!r}")
    if inner is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads 2e-4 (no dot) as text; accept what any reader means by it
            try:
                return float(value)
            except ValueError:
                pass
        raise UserError(f"config key '{key}' must be a number, got {value!r}")
    if inner is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"config key '{key}' must be text, got {value!r}")
    if inner is Path:
        return Path(str(value))
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key '{key}' must be a list, got {value!r}")
        (item_tp, *_) = typing.get_args(inner) or (Any,)
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"config key '{key}' must be a mapping, got {value!r}")
        _, value_tp = typing.get_args(inner) or (Any, Any)
        return {k: _coerce(v, value_tp, f"{key}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        allowed = typing.get_args(inner)
        if value not in allowed:
            raise UserError(f"config key '{key}' must be one of {list(allowed)}, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build the dataclass ``cls`` from a plain mapping, checking keys and types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    dynamic = _dynamic(cls)
    if dynamic:
        data = dict(data)
        parsed = {}
        for name, section_cls in dynamic.items():
            if name in data:
                value = data.pop(name)
                if not isinstance(value, dict):
                    raise UserError(f"config key '{prefix}{name}' must be a mapping, got {value!r}")
                parsed[name] = from_dict(section_cls, value, prefix=f"{prefix}{name}.")
        if "sections" in data:
            raise UserError(f"config key '{prefix}sections' is not set directly; write each section at the top level")
        fields = {k: v for k, v in fields.items() if k != "sections"}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise UserError(
                f"unknown config key '{prefix}{unknown[0]}'; known keys here: "
                + ", ".join(f"{prefix}{k}" for k in sorted([*fields, *dynamic]))
            )
        kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
        try:
            return cls(**kwargs, sections=parsed)
        except TypeError as exc:
            raise UserError(f"config {prefix or cls.__name__}: {exc}") from None
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"unknown config key '{prefix}{unknown[0]}'; known keys here: " + ", ".join(f"{prefix}{k}" for k in sorted(fields)))
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise UserError(f"config {prefix or cls.__name__}: {exc}") from None


def _dynamic(cls: type) -> dict[str, type]:
    """The registry-backed sections of ``cls`` (empty for ordinary configs)."""
    hook = getattr(cls, "dynamic_sections", None)
    return dict(hook()) if callable(hook) else {}


def to_dict(obj: Any) -> Any:
    """A YAML/JSON-safe plain copy of a config dataclass; registry-backed sections appear as
    ordinary nested keys (their defaults where unset)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        dynamic = _dynamic(type(obj))
        out = {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not (dynamic and f.name == "sections")}
        for name, section_cls in dynamic.items():
            out[name] = to_dict(obj.sections.get(name) or section_cls())
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=x"]`` into a nested mapping; values are parsed as YAML scalars."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override '{item}' must look like key=value (for example tfidf.C=4)")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override '{item}' conflicts with another override of '{part}'")
        node[parts[-1]] = value
    return nested


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``update`` wins."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a mapping with the same key twice (YAML would keep the
    last silently: a duplicated label would lose its first description)."""

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (lines {seen[key]} and {key_node.start_mark.line + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping with errors that name the file (a duplicate key is an error)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.constructor.ConstructorError as exc:
        raise UserError(f"{path}: {exc.problem}; keep one") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a YAML mapping at the top level")
    return data


def load_config(cls: type[T], path: Path | None = None, overrides: list[str] | None = None) -> T:
    """Load ``cls`` from an optional YAML file, then apply dotted ``key=value`` overrides."""
    data = read_yaml(path) if path else {}
    data = merge(data, parse_overrides(overrides or []))
    return from_dict(cls, data)


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, docstring) for every field, nested configs flattened; for --help."""
    rows: list[tuple[str, str, str]] = []
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    dynamic = _dynamic(cls)
    for f in dataclasses.fields(cls):
        if dynamic and f.name == "sections":
            continue
        inner, _ = _resolve_type(hints[f.name])
        if dataclasses.is_dataclass(inner):
            rows.extend(describe(inner, prefix=f"{prefix}{f.name}."))
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = repr(f.default_factory())  # type: ignore[misc]
        else:
            default = "(required)"
        rows.append((prefix + f.name, default, docs.get(f.name, "")))
    for name, section_cls in dynamic.items():
        rows.extend(describe(section_cls, prefix=f"{prefix}{name}."))
    return rows
