"""One strict, typed reader of configuration files, for every package.

Configs are frozen dataclasses; each field's rules live in the field itself::

    max_epochs: int = field(default=100, metadata={"help": "epochs at most", "min": 1})

Metadata keys: ``help`` (one line, used by the command line), ``choices`` (allowed
values; for a tuple field, allowed elements), ``min``/``max`` (inclusive bounds), ``gt``/
``lt`` (exclusive bounds), ``check`` (a function ``value -> problem text or None``) with
``allowed`` (what to say is allowed), ``kind`` (what an unknown choice is called), and
``inline`` (a nested dataclass whose keys are written at this level of the file).

- :func:`build_config` turns a dict (a TOML table) into such a dataclass. It converts
  nothing silently (``"5"`` is not an int, ``true`` is not an int, an int is accepted for
  a float), resolves :class:`~pathlib.Path` fields relative to the file's folder, and
  COLLECTS every problem (unknown keys with "did you mean", wrong types, values out of
  range, a ``__post_init__`` that refuses) into one :class:`ConfigError`.
- :func:`check_fields` applies the same field rules to an object built in Python; every
  config's ``__post_init__`` calls it.
- :func:`subset_config` makes a config of some of another config's fields (the
  settings a study gives every run, without the per-run ones), validated by the original.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from featstore.errors import CrosslingError, did_you_mean


class ConfigError(CrosslingError, ValueError):
    """One or more problems of a configuration; ``problems`` lists them, one line each
    (``"<file> [<section.key>]: <what is wrong>; allowed: <what is>"``)."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _Problem(Exception):
    """A problem of one value (internal: becomes one line of a ConfigError)."""

    def __init__(self, message: str, allowed: str = "") -> None:
        super().__init__(message)
        self.message, self.allowed = message, allowed


_NO_DEFAULT = dataclasses.MISSING


def field_help(f: dataclasses.Field) -> str:
    """The help text of a dataclass field (``""`` when it has none)."""
    return str(f.metadata.get("help", ""))


def config_hints(cls: type) -> dict[str, Any]:
    """The resolved type of every field of dataclass ``cls``."""
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that cannot be resolved: keep it as written
        return {f.name: f.type for f in dataclasses.fields(cls)}


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint) if a is not type(None))
    if origin is tuple:
        args = typing.get_args(hint)
        inner = _type_name(args[0]) if args else "value"
        return f"a list of {inner}" if len(args) != 2 or args[1] is Ellipsis else f"a list of {len(args)} values"
    if origin in (dict, Mapping, typing.Mapping):
        return "a table"
    if dataclasses.is_dataclass(hint):
        return f"a table of {hint.__name__} settings"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path (string)"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _rules(meta: Mapping[str, Any]) -> str:
    parts = []
    if "choices" in meta:
        parts.append(", ".join(str(c) for c in meta["choices"]))
    if "min" in meta:
        parts.append(f">= {meta['min']}")
    if "gt" in meta:
        parts.append(f"> {meta['gt']}")
    if "max" in meta:
        parts.append(f"<= {meta['max']}")
    if "lt" in meta:
        parts.append(f"< {meta['lt']}")
    if "allowed" in meta:
        parts.append(str(meta["allowed"]))
    return " and ".join(parts)


def check_value(value: Any, meta: Mapping[str, Any], name: str = "value") -> str | None:
    """The problem of ``value`` under the field rules ``meta`` (choices, bounds, check),
    or None. A tuple's elements are checked one by one."""
    if isinstance(value, (tuple, list)) and any(k in meta for k in ("choices", "min", "max", "gt", "lt")):
        for item in value:
            problem = check_value(item, {k: v for k, v in meta.items() if k != "check"}, name)
            if problem:
                return f"element {_show(item)}: {problem}"
        value = tuple(value)
    elif value is not None:
        if "choices" in meta and value not in meta["choices"]:
            kind = meta.get("kind", name)
            return f"unknown {kind} {_show(value)}{did_you_mean(str(value), [str(c) for c in meta['choices']])}"
        try:
            for key, bad, word in (("min", lambda v, b: v < b, ">="), ("max", lambda v, b: v > b, "<="),
                                   ("gt", lambda v, b: v <= b, ">"), ("lt", lambda v, b: v >= b, "<")):
                if key in meta and bad(value, meta[key]):
                    return f"{_show(value)} is out of range (must be {word} {meta[key]})"
        except TypeError:
            return f"{_show(value)} is not a number"
    check = meta.get("check")
    if check is not None and value is not None:
        try:
            return check(value)
        except TypeError:
            return f"{_show(value)} has the wrong type"
    return None


def check_fields(obj: Any) -> None:
    """Apply every field's rules (numeric and boolean types, choices, bounds, check) to the
    dataclass ``obj``; raise one :class:`ConfigError` listing every problem.

    Called first thing in ``__post_init__``, so configs made in Python are checked like
    configs read from a file. Strings and containers are not type-checked here (Python
    callers pass ``Path`` for ``str`` and lists for tuples); the file reader checks them.
    """
    hints = config_hints(type(obj))
    name = type(obj).__name__
    problems = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        problem = _python_type_problem(value, hints.get(f.name, f.type))
        if problem is None:
            problem = check_value(value, f.metadata, f.name)
        if problem:
            rules = _rules(f.metadata)
            problems.append(f"{name}.{f.name}: {problem}" + (f"; allowed: {rules}" if rules else ""))
    if problems:
        raise ConfigError(problems)


def _python_type_problem(value: Any, hint: Any) -> str | None:
    options = _union_args(hint)
    if value is None:
        return None if type(None) in options or not options else f"{_type_name(hint)} is required, got None"
    kinds = {bool: lambda v: isinstance(v, bool),
             int: lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool),
             float: lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)}
    scalar = [o for o in options if o is not type(None)]
    if scalar and all(o in kinds for o in scalar) and not any(kinds[o](value) for o in scalar):
        return f"expected {_type_name(hint)}, got {_show(value)}"
    return None


def _union_args(hint: Any) -> tuple:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


class _Reader:
    """Builds dataclasses from dicts, collecting problems instead of stopping at the first."""

    def __init__(self, source: str, base: Path | None) -> None:
        self.source, self.base = source, base
        self.problems: list[str] = []

    def say(self, where: str, message: str, allowed: str = "") -> None:
        where_text = f" [{where}]" if where else ""
        self.problems.append(f"{self.source}{where_text}: {message}" + (f"; allowed: {allowed}" if allowed else ""))

    def keys_of(self, cls: type) -> dict[str, tuple[dataclasses.Field, str | None]]:
        """Every key accepted for ``cls``: its fields, and the keys of inline fields
        (-> (field, name of the inline field it belongs to))."""
        keys: dict[str, tuple[dataclasses.Field, str | None]] = {}
        hints = config_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.metadata.get("inline"):
                for sub in dataclasses.fields(hints[f.name]):
                    if sub.init:
                        keys[sub.name] = (sub, f.name)
            else:
                keys[f.name] = (f, None)
        return keys

    def build(self, cls: type, data: Any, where: str, fixed: Mapping[str, Any] | None = None) -> Any:
        """``cls(**data)`` with every value checked; None when something was wrong."""
        if not isinstance(data, Mapping):
            self.say(where, f"expected a table of {cls.__name__} settings, got {_show(data)}")
            return None
        fixed = dict(fixed or {})
        hints = config_hints(cls)
        accepted = self.keys_of(cls)
        n_before = len(self.problems)
        kwargs: dict[str, Any] = {}
        inline_data: dict[str, dict[str, Any]] = {}
        for key, value in data.items():
            path = f"{where}.{key}" if where else str(key)
            if key not in accepted or key in fixed:
                known = sorted(k for k in accepted if k not in fixed)
                self.say(path, f"unknown key{did_you_mean(str(key), known)}", ", ".join(known))
                continue
            f, owner = accepted[key]
            hint = config_hints(hints[owner])[key] if owner else hints[key]
            converted = self.convert(value, hint, f, path)
            if converted is _BAD:
                continue
            if owner:
                inline_data.setdefault(owner, {})[key] = converted
            else:
                kwargs[key] = converted
        for owner, sub in inline_data.items():
            kwargs[owner] = self.construct(config_hints(cls)[owner], sub, where)
        for f in dataclasses.fields(cls):
            if (f.init and f.name not in kwargs and f.name not in fixed and f.name not in data
                    and f.default is _NO_DEFAULT and f.default_factory is _NO_DEFAULT):
                self.say(f"{where}.{f.name}" if where else f.name, "missing (required)", _type_name(hints[f.name]))
        if len(self.problems) > n_before:
            return None
        return self.construct(cls, {**kwargs, **fixed}, where)

    def construct(self, cls: type, kwargs: Mapping[str, Any], where: str) -> Any:
        try:
            return cls(**kwargs)
        except ConfigError as err:
            for problem in err.problems:
                # "Class.key: ..." from check_fields -> "[where.key]: ..."
                head, _, rest = problem.partition(": ")
                key = head.split(".", 1)[1] if "." in head and " " not in head else ""
                if key:
                    self.problems.append(f"{self.source} [{where + '.' if where else ''}{key}]: {rest}")
                else:
                    self.say(where, problem)
        except (ValueError, TypeError, KeyError) as err:
            self.say(where, str(err).strip("'\""))
        return None

    def convert(self, value: Any, hint: Any, f: dataclasses.Field | None, path: str) -> Any:
        try:
            result = self._convert(value, hint, path)
        except _Problem as problem:
            allowed = problem.allowed or (_rules(f.metadata) if f is not None else "")
            self.say(path, problem.message, allowed)
            return _BAD
        if result is _BAD:
            return _BAD
        if f is not None:
            problem_text = check_value(result, f.metadata, f.name)
            if problem_text:
                self.say(path, problem_text, _rules(f.metadata))
                return _BAD
        return result

    def _convert(self, value: Any, hint: Any, path: str) -> Any:
        origin = typing.get_origin(hint)
        if hint is Any:
            return value
        if origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            for option in options:  # the first option the value is (bool before int before float)
                try:
                    return self._convert(value, option, path)
                except _Problem:
                    continue
            raise _Problem(f"expected {_type_name(hint)}, got {_show(value)}")
        if origin is typing.Literal:
            choices = typing.get_args(hint)
            if not any(value == c and type(value) is type(c) for c in choices):
                raise _Problem(f"{_show(value)} is not allowed{did_you_mean(str(value), map(str, choices))}",
                               ", ".join(str(c) for c in choices))
            return value
        if origin is tuple:
            if not isinstance(value, (list, tuple)):
                raise _Problem(f"expected {_type_name(hint)}, got {_show(value)}")
            args = typing.get_args(hint)
            if len(args) == 2 and args[1] is Ellipsis:
                element_hints = [args[0]] * len(value)
            elif args:
                if len(value) != len(args):
                    raise _Problem(f"expected {len(args)} values, got {len(value)}")
                element_hints = list(args)
            else:
                element_hints = [Any] * len(value)
            return tuple(self._convert(v, h, f"{path}[{i}]") for i, (v, h) in enumerate(zip(value, element_hints, strict=True)))
        if origin in (dict, Mapping, typing.Mapping) or hint in (dict, Mapping):
            if not isinstance(value, Mapping):
                raise _Problem(f"expected a table, got {_show(value)}")
            args = typing.get_args(hint)
            if len(args) == 2:
                return {self._convert(k, args[0], path): self._convert(v, args[1], f"{path}.{k}")
                        for k, v in value.items()}
            return dict(value)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            if not isinstance(value, Mapping):
                raise _Problem(f"expected {_type_name(hint)}, got {_show(value)}")
            built = self.build(hint, value, path)
            return _BAD if built is None else built
        if hint is bool:
            if not isinstance(value, bool):
                raise _Problem(f"expected true or false, got {_show(value)}")
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _Problem(f"expected an integer, got {_show(value)}")
            return value
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _Problem(f"expected a number, got {_show(value)}")
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise _Problem(f"expected a string, got {_show(value)}")
            return value
        if isinstance(hint, type) and issubclass(hint, Path):
            if not isinstance(value, str) or not value:
                raise _Problem(f"expected a path (a non-empty string), got {_show(value)}")
            p = Path(value).expanduser()
            return p if p.is_absolute() or self.base is None else self.base / p
        if isinstance(hint, type):
            if not isinstance(value, hint):
                raise _Problem(f"expected {_type_name(hint)}, got {_show(value)}")
            return value
        return value


_BAD = object()


def build_config(cls: type, data: Mapping[str, Any], source: str | Path = "<config>", where: str = "",
                 base: str | Path | None = None, fixed: Mapping[str, Any] | None = None) -> Any:
    """Build dataclass ``cls`` from ``data`` (a TOML table), checking every key and value.

    Parameters
    ----------
    cls : a (frozen) dataclass; nested dataclass fields are read from sub-tables.
    data : the table.
    source : the file named in problems.
    where : the section the table is (``"probes"`` -> problems say ``[probes.head]``).
    base : folder that relative ``Path`` values are resolved against (the file's folder).
    fixed : values given by the caller, not the file (a key for them in ``data`` is unknown).

    Raises
    ------
    ConfigError listing every problem (unknown keys, wrong types, values out of range,
    what ``cls.__post_init__`` refuses).
    """
    reader = _Reader(str(source), Path(base) if base is not None else None)
    result = reader.build(cls, data, where, fixed)
    if reader.problems or result is None:
        raise ConfigError(reader.problems or [f"{source} [{where}]: invalid"])
    return result


class ConfigReader(_Reader):
    """:func:`build_config` for a file of several sections: ``build`` each section, add
    problems of your own with ``say``, then :meth:`raise_if_problems` once."""

    def __init__(self, source: str | Path, base: str | Path | None = None) -> None:
        super().__init__(str(source), Path(base) if base is not None else None)

    def raise_if_problems(self, error: type[ConfigError] = ConfigError) -> None:
        """Raise one ``error`` (a :class:`ConfigError`) with every problem collected so far."""
        if self.problems:
            raise error(self.problems)


def subset_config(cls: type, exclude: Iterable[str], name: str, placeholders: Mapping[str, Any] | None = None,
                  defaults: Mapping[str, Any] | None = None, doc: str = "", module: str | None = None) -> type:
    """A frozen dataclass ``name`` with the fields of ``cls`` except ``exclude`` (same types,
    defaults and metadata; ``defaults`` replaces some defaults). Its ``__post_init__``
    validates by building ``cls`` from its values and ``placeholders`` (values for the
    excluded required fields); its ``complete(**values)`` returns that ``cls``.
    Names in ``exclude`` that ``cls`` lacks are ignored."""
    exclude = set(exclude)
    placeholders = dict(placeholders or {})
    defaults = dict(defaults or {})
    hints = config_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init:
            continue
        if f.name in defaults:
            value = defaults[f.name]
            if dataclasses.is_dataclass(value):
                kind = dataclasses.field(default_factory=lambda v=value: v, metadata=f.metadata)
            else:
                kind = dataclasses.field(default=value, metadata=f.metadata)
        elif f.default is not _NO_DEFAULT:
            kind = dataclasses.field(default=f.default, metadata=f.metadata)
        elif f.default_factory is not _NO_DEFAULT:
            kind = dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)
        else:
            kind = dataclasses.field(metadata=f.metadata)
        specs.append((f.name, hints[f.name], kind))
    # required fields first (a dataclass needs them before the ones with defaults)
    specs.sort(key=lambda s: s[2].default is not _NO_DEFAULT or s[2].default_factory is not _NO_DEFAULT)

    def complete(self: Any, **values: Any) -> Any:
        return cls(**{**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, **values})

    def post_init(self: Any) -> None:
        check_fields(self)
        try:
            complete(self, **placeholders)
        except ConfigError as err:
            raise ConfigError([p.replace(f"{cls.__name__}.", f"{name}.", 1) for p in err.problems]) from None

    namespace: dict[str, Callable] = {"__post_init__": post_init, "complete": complete}
    made = dataclasses.make_dataclass(name, specs, frozen=True, namespace=namespace)
    made.__doc__ = doc or f"The settings of :class:`{cls.__module__}.{cls.__name__}` except {sorted(exclude)}."
    made.__module__ = module or cls.__module__
    return made


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(value: object) -> str | None:
    """A device name's syntax (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``): checked when a
    config is read; whether this machine has it is checked where the model is loaded."""
    return None if isinstance(value, str) and _DEVICE_RE.match(value) else f"{value!r} is not a device name"


DEVICE_RULE: dict[str, Any] = {"check": check_device_name, "allowed": "auto, cpu, cuda, cuda:N, mps"}
"""Field metadata for a device option: ``field(default="auto", metadata={"help": ..., **DEVICE_RULE})``."""


__all__ = [
    "DEVICE_RULE", "check_device_name","ConfigError", "ConfigReader", "build_config", "check_fields", "check_value",
           "config_hints", "field_help", "subset_config"]
