"""The command line's one error boundary and its plain printer.

Every console script (``crossling``, ``featstore``, ``probes``, ``finetune``; see
``cli.py``) runs its commands through :func:`guard` (applied to every registered
command by :func:`guard_app`, started by :func:`run_app`):

- a user error (:class:`featstore.errors.CrosslingError`, one of :data:`USER_ERRORS`, or an
  ``OSError`` that names a file) prints ``error: <message>`` on stderr and exits with code
  2, without a traceback;
- Ctrl-C (``KeyboardInterrupt``) prints ``interrupted; rerun to resume`` and exits with
  code 130 (every long step resumes from what it saved);
- a cache root (``--cache-root``/``--cache``, else ``$CROSSLING_CACHE`` or ``./cache``)
  that exists but is not a folder is a user error in every command, checked before the
  command runs;
- anything else is a programming error and keeps its traceback.

:func:`print_error` and :func:`print_line` write plain text: no Rich markup is read (a
``[cn]`` in a path stays) and nothing is wrapped at the terminal width, so a path in a log
can be copied whole.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer

from featstore.errors import CrosslingError

F = TypeVar("F", bound=Callable[..., Any])

INTERRUPTED = "interrupted; rerun to resume"
"""What Ctrl-C prints (exit code 130)."""

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

USER_ERRORS: tuple[str, ...] = (
    "featstore.audio:AudioError",
    "featstore.cache._lock:CacheLockedError",
    "featstore.cache._format:CacheError",
    "featstore.extract._config:ExtractError",
    "featstore.models.resolve:ModelNotFoundError",
    "featstore.models.weights:ModelLoadError",
    "featstore.corpora.base:CorpusNotFoundError",
    "featstore.corpora.base:CorpusFormatError",
    "featstore.synth.espeak:EspeakError",
    "featstore.manifest:ManifestError",
    "featstore.splits.folds:FoldError",
    "featstore.splits.paper:MissingFilesError",
    "probes.human.webmushra:WebMushraError",
    "probes.data:ProbeDataError",
    "probes.sed._eder:LabelError",
    "finetune.checkpoint:CheckpointError",
    "finetune.run:FinetuneError",
    "study.config:StudyConfigError",
)
"""User-error classes that may not (yet) derive from ``CrosslingError``, as
``module:Class``. Only modules already imported are looked at: an exception of a class
whose module was never imported cannot have been raised."""

CACHE_ROOT_PARAMS = ("cache_root", "cache")
"""Command parameters holding a cache root (checked by :func:`guard`)."""


def _pass_through() -> tuple[type[BaseException], ...]:
    """Exceptions of the command-line framework itself (exit, abort, usage errors): they
    pass the boundary untouched. Typer >= 0.20 carries its own copy of click, older ones use
    click's: both are covered."""
    classes: set[type[BaseException]] = {typer.Exit, typer.Abort}
    classes.update(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    try:
        import click
    except ImportError:  # pragma: no cover - typer's own copy only
        pass
    else:
        classes.update((click.exceptions.Exit, click.exceptions.Abort, click.ClickException))
    return tuple(classes)


_PASS_THROUGH = _pass_through()


class CommandError(CrosslingError):
    """A user error found by a command itself (see :func:`fail`)."""


def _stream(err: bool) -> Any:
    return sys.stderr if err else sys.stdout  # looked up per call: test runners swap them


def print_line(message: object, err: bool = False) -> None:
    """Write ``message`` and a newline as plain text (no markup, no wrapping) to stdout,
    or stderr with ``err=True``."""
    stream = _stream(err)
    stream.write(f"{message}\n")
    stream.flush()


def print_error(message: object) -> None:
    """Write ``error: <message>`` to stderr as plain text: never wrapped, never read as
    Rich markup."""
    print_line(f"error: {message}", err=True)


def fail(message: object) -> NoReturn:
    """Stop the command with a user error (``error: <message>``, exit code 2)."""
    raise CommandError(str(message))


def _known_user_error_classes() -> tuple[type[BaseException], ...]:
    classes: list[type[BaseException]] = [CrosslingError]
    for spec in USER_ERRORS:
        module_name, _, cls_name = spec.partition(":")
        module = sys.modules.get(module_name)
        cls = getattr(module, cls_name, None) if module is not None else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            classes.append(cls)
    return tuple(classes)


def is_user_error(err: BaseException) -> bool:
    """True for errors the user can fix: see the module docstring."""
    if isinstance(err, _known_user_error_classes()):
        return True
    return isinstance(err, OSError) and bool(getattr(err, "filename", None))


def error_message(err: BaseException) -> str:
    """The one-line text printed for a user error."""
    if isinstance(err, OSError) and not isinstance(err, CrosslingError) and err.filename and err.strerror:
        return f"{err.filename}: {err.strerror}"
    text = str(err)
    if isinstance(err, KeyError) and not isinstance(err, CrosslingError) and len(err.args) == 1:
        text = str(err.args[0])
    return text or type(err).__name__


def check_cache_root(root: str | Path | None, given_by: str = "--cache-root") -> Path:
    """The cache root (``root``, else ``$CROSSLING_CACHE``, else ``./cache``); a
    :class:`CommandError` if it exists and is not a folder. ``given_by`` says where
    ``root`` came from (an option, or a config file's key)."""
    path = Path(root) if root is not None else Path(os.environ.get("CROSSLING_CACHE", "cache"))
    if path.exists() and not path.is_dir():
        where = given_by if root is not None else "$CROSSLING_CACHE or ./cache"
        raise CommandError(f"cache root {path} (from {where}) is a file, not a folder; "
                           "give a folder with --cache-root or $CROSSLING_CACHE")
    return path


def guard(func: F) -> F:
    """Run a Typer command inside the error boundary (see the module docstring)."""
    if getattr(func, "__crossling_guarded__", False):
        return func

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            for name in CACHE_ROOT_PARAMS:
                if name in kwargs and (kwargs[name] is None or isinstance(kwargs[name], (str, Path))):
                    check_cache_root(kwargs[name])
            return func(*args, **kwargs)
        except _PASS_THROUGH:
            raise
        except KeyboardInterrupt:
            print_line(INTERRUPTED, err=True)
            raise typer.Exit(code=EXIT_INTERRUPTED) from None
        except Exception as err:  # noqa: BLE001 - sorted below: user errors end here, the rest re-raise
            if not is_user_error(err):
                raise
            print_error(error_message(err))
            raise typer.Exit(code=EXIT_USER_ERROR) from None

    wrapper.__crossling_guarded__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def guard_app(app: typer.Typer) -> typer.Typer:
    """Put every command of ``app`` and of its sub-apps inside :func:`guard` (idempotent)."""
    for info in app.registered_commands:
        if info.callback is not None:
            info.callback = guard(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            guard_app(group.typer_instance)
    return app


def first_sentence(text: str | None) -> str:
    """The first sentence of a docstring, on one line (a command's entry in a command list:
    click would otherwise cut the docstring mid-sentence at 45 characters)."""
    para = " ".join((text or "").strip().split("\n\n")[0].split())
    for end in (". ", ".\t"):
        if end in para:
            return para[: para.index(end) + 1]
    return para


def complete_short_help(app: typer.Typer) -> typer.Typer:
    """Give each command of ``app`` (and of its sub-apps) without a ``short_help`` the first
    sentence of its docstring, so the command list shows whole sentences."""
    for info in app.registered_commands:
        if not isinstance(info.short_help, str) and info.callback is not None:
            info.short_help = first_sentence(info.callback.__doc__)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            complete_short_help(group.typer_instance)
    return app


def run_app(app: typer.Typer, prog_name: str | None = None) -> None:
    """Run ``app`` as a console script inside the boundary (exits the process)."""
    guard_app(app)
    try:
        app(prog_name=prog_name)
    except KeyboardInterrupt:  # outside a command (while parsing, importing)
        print_line(INTERRUPTED, err=True)
        sys.exit(EXIT_INTERRUPTED)


def resolve_device(device: str) -> str:
    """The device name a command hands to the library: ``auto`` -> ``cuda`` (this rank's)
    when present, else ``cpu``; one rule, :func:`featstore.models.device.resolve_device`."""
    from featstore.models.device import resolve_device as resolve  # late: loads torch

    return str(resolve(device))


def prepared_corpora(root: str | Path | None) -> list[str]:
    """Names of the corpora known under the cache root: prepared ones
    (``manifests/<name>.parquet``) and those with a feature cache (``<model>/<name>.h5``
    or its shards)."""
    import re

    base = check_cache_root(root)
    names: set[str] = set()
    folder = base / "manifests"
    if folder.is_dir():
        names.update(p.name[: -len(".parquet")] for p in folder.glob("*.parquet")
                     if not p.name.endswith(".bad.parquet"))
    if base.is_dir():
        for h5 in base.glob("*/*.h5"):
            names.add(re.sub(r"\.shard-\d+-of-\d+$", "", h5.name[: -len(".h5")]))
    return sorted(names)


def check_corpora(names: str | list[str] | tuple[str, ...], root: str | Path | None) -> None:
    """Each name must be a corpus known under the cache root (:func:`prepared_corpora`), else an
    :class:`~featstore.errors.UnknownNameError` that lists the prepared ones (and the
    closest name)."""
    from featstore.errors import unknown_name

    known = prepared_corpora(root)
    for name in [names] if isinstance(names, str) else names:
        if name not in known:
            raise unknown_name("corpus", name, known,
                               hint=f"prepared corpora are manifests/<name>.parquet under {check_cache_root(root)} "
                                    "(make one with `featstore prepare`)")


def aliased(aliases: dict[str, str]) -> type:
    """A Typer command class that also accepts the deprecated option spellings in
    ``aliases`` (old -> new, e.g. ``{"--train": "--train-corpus"}``), hidden from help;
    using one prints a note on stderr."""
    from typer.core import TyperCommand

    class AliasedCommand(TyperCommand):
        deprecated_aliases = dict(aliases)

        def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
            rewritten: list[str] = []
            rest = False
            for arg in args:
                if not rest and arg == "--":
                    rest = True
                name, eq, value = arg.partition("=")
                if not rest and name in self.deprecated_aliases:
                    new = self.deprecated_aliases[name]
                    print_line(f"note: {name} is deprecated; use {new}", err=True)
                    arg = f"{new}{eq}{value}"
                rewritten.append(arg)
            return super().parse_args(ctx, rewritten)

    return AliasedCommand


def config_field(cls: type, name: str) -> Any:
    """The ``dataclasses.Field`` ``name`` of the dataclass ``cls`` (KeyError if absent)."""
    import dataclasses

    return {f.name: f for f in dataclasses.fields(cls)}[name]


def field_help(cls: type, name: str, fallback: str = "") -> str:
    """The help of a config field (its ``metadata["help"]``), else ``fallback``: an
    option built from it says the same as the config."""
    return str(config_field(cls, name).metadata.get("help", fallback))


def _option_spelling(param: str) -> str:
    """How the running command spells the option of parameter ``param`` (``--stats`` for
    ``stats_enabled``); ``--param-name`` outside a command."""
    import click

    ctx = click.get_current_context(silent=True)
    for p in ctx.command.params if ctx is not None else ():
        if p.name == param and any(o.startswith("--") for o in p.opts):
            return next(o for o in p.opts if o.startswith("--"))
    return "--" + param.replace("_", "-")


def in_option_terms(message: str, fields: Mapping[str, str]) -> str:
    """``message`` (a config's error) with each ``Class.field`` that an option sets
    replaced by that option: a command line user reads ``--workers``, not
    ``ExtractConfig.n_workers``. ``fields`` is a command's ``CONFIG_FIELDS`` entry
    (option parameter name -> ``module:Class.field``)."""
    names = {target.partition(":")[2]: _option_spelling(param) for param, target in fields.items()}
    if not names:
        return message
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")\b")
    return pattern.sub(lambda m: names[m.group(1)], message)


def field_default(cls: type, name: str) -> Any:
    """The default of a config field (``default_factory`` called)."""
    import dataclasses

    f = config_field(cls, name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise KeyError(f"{cls.__name__}.{name} has no default")


def cell(value: object) -> Any:
    """``value`` as a Rich table cell that is never read as markup (``[cn]`` stays)."""
    from rich.text import Text

    return Text("" if value is None else str(value))


# --- progress display -------------------------------------------------------------------

PROGRESS_EVERY_S = 10.0
"""Plain progress lines (output that is not a terminal): at most one per this many
seconds, plus one at each further 10 % and one at the end."""


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def is_terminal(stream: Any = None) -> bool:
    """True when ``stream`` (default stderr) is an interactive terminal."""
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class StepProgress:
    """Progress of a long step, ``done`` of ``total`` ``unit``: a Rich bar on a terminal;
    otherwise plain one-line messages at a steady rate (:data:`PROGRESS_EVERY_S`, each
    further 10 %, the end), never a bar cut at the log's width. Each message names its
    numbers: ``extracting m / c: 80/160 utts (50 %), 0:12 elapsed, ETA 0:12, <detail>``.

    ``write`` receives the plain lines (default: stderr); ``tty`` forces the choice (default:
    whether stderr is a terminal); ``enabled=False`` shows nothing. Use as a context manager.
    """

    def __init__(self, label: str, total: int | None = None, unit: str = "", done: int = 0, *,
                 enabled: bool = True, tty: bool | None = None, write: Callable[[str], None] | None = None,
                 every_s: float = PROGRESS_EVERY_S) -> None:
        import time

        self.label, self.total, self.unit, self.done = label, total, unit, done
        self.enabled = enabled
        self.tty = is_terminal() if tty is None else tty
        self.write = write or (lambda line: print_line(line, err=True))
        self.every_s = every_s
        self.detail = ""
        self._time = time.perf_counter
        self._t0 = self._last = self._time()
        self._start_done = done
        self._last_tenth = self._tenth()
        self._bar: Any = None
        self._task: Any = None

    def _tenth(self) -> int:
        return int(10 * self.done / self.total) if self.total else 0

    def __enter__(self) -> StepProgress:
        if self.enabled and self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                                 TextColumn(self.unit, markup=False), TextColumn("ETA"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[detail]}", markup=False), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, completed=self.done, detail="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.enabled and not exc[0] and self.done != self._start_done:
            self.write(self.line())

    def line(self) -> str:
        """The plain progress message for where the step stands now."""
        elapsed = self._time() - self._t0
        parts = [f"{self.label}: {self.done}" + (f"/{self.total}" if self.total else "") + (f" {self.unit}" if self.unit else "")]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f} %)"
        parts.append(f"{_clock(elapsed)} elapsed")
        moved = self.done - self._start_done
        if self.total and moved > 0 and self.done < self.total:
            parts.append(f"ETA {_clock(elapsed / moved * (self.total - self.done))}")
        if self.detail:
            parts.append(self.detail)
        return ", ".join(parts)

    def advance(self, n: int = 1, detail: str | None = None) -> None:
        """``n`` more done; ``detail`` (e.g. ``1.2 h audio, 3.4x real time``) replaces the last."""
        self.update(self.done + n, detail)

    def update(self, done: int, detail: str | None = None) -> None:
        """Set the count to ``done`` (and the detail)."""
        self.done = done
        if detail is not None:
            self.detail = detail
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=done, detail=self.detail)
            return
        now, tenth = self._time(), self._tenth()
        if now - self._last >= self.every_s or tenth > self._last_tenth:
            self._last, self._last_tenth = now, tenth
            if self.total is None or done < self.total:  # the end is written on exit
                self.write(self.line())

    def note(self, message: str) -> None:
        """A line of its own (above the bar on a terminal)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False, soft_wrap=True)
        else:
            self.write(message)


def track_items(items: Any, label: str, unit: str = "", *, enabled: bool = True, tty: bool | None = None,
                write: Callable[[str], None] | None = None) -> Any:
    """Iterate over ``items`` showing a :class:`StepProgress` (``len(items)`` when it has
    one): a drop-in for ``rich.progress.track`` that writes plain lines when not on a terminal."""
    total = len(items) if hasattr(items, "__len__") else None
    with StepProgress(label, total, unit, enabled=enabled, tty=tty, write=write) as bar:
        for item in items:
            yield item
            bar.advance()


class EpochProgress:
    """Fine-tuning progress, one line per epoch (at most one per ``every_s`` seconds, and
    always the first epoch and the last epoch of a stage): fold, stage, epoch of ``max_epochs``, training and
    validation loss, validation UA (``valid_ua``, a fraction, shown in %; else validation
    accuracy, named so) and an upper bound of the time left (every fold runs to
    ``max_epochs`` at the mean epoch time so far; early stopping ends sooner).

    Pass the instance as ``on_epoch`` to ``finetune.run.run_finetune``.
    """

    def __init__(self, write: Callable[[str], None], n_folds: int, max_epochs: int, n_stages: int = 1,
                 label: str = "fine-tuning", every_s: float = 0.0) -> None:
        import time

        self.write, self.label = write, label
        self.n_folds, self.max_epochs, self.n_stages = n_folds, max_epochs, n_stages
        self.every_s = every_s
        self._time = time.perf_counter
        self._t0 = self._last = self._time()
        self.epochs_done = 0
        self._folds: list[object] = []

    def __call__(self, row: dict) -> None:
        """Record one epoch's log row (``fold``, ``stage``, ``epoch``, ``train_loss``,
        ``valid_loss``, ``valid_ua`` or ``valid_acc``)."""
        self.epochs_done += 1
        fold = row.get("fold")
        if fold not in self._folds:
            self._folds.append(fold)
        now = self._time()
        last = int(row.get("epoch", 0)) >= self.max_epochs
        if not last and self.epochs_done > 1 and now - self._last < self.every_s:
            return
        self._last = now
        self.write(self.line(row))

    def line(self, row: dict) -> str:
        """The progress line for an epoch's log row."""
        elapsed = self._time() - self._t0
        per_epoch = elapsed / max(self.epochs_done, 1)
        total = self.n_folds * self.n_stages * self.max_epochs
        left = max(total - self.epochs_done, 0) * per_epoch
        fold_no = len(self._folds)
        stage = row.get("stage")
        parts = [f"{self.label} fold {row.get('fold')} ({fold_no}/{self.n_folds})"
                 + (f" {stage}" if stage and self.n_stages > 1 else "")
                 + f" epoch {row.get('epoch')}/{self.max_epochs}"]
        if row.get("train_loss") is not None:
            parts.append(f"train loss {float(row['train_loss']):.3f}")
        if row.get("valid_loss") is not None:
            parts.append(f"valid loss {float(row['valid_loss']):.3f}")
        if row.get("valid_ua") is not None:
            parts.append(f"valid UA {100 * float(row['valid_ua']):.1f} %")
        elif row.get("valid_acc") is not None:
            parts.append(f"valid accuracy {100 * float(row['valid_acc']):.1f} %")
        parts.append(f"{per_epoch:.1f} s/epoch, {_clock(elapsed)} elapsed, ETA at most {_clock(left)}")
        return ", ".join(parts)


def table_text(frame: object, max_rows: int = 40) -> str:
    """``frame`` (a polars DataFrame) as plain aligned text for a terminal or a log: rates
    in percent with the unit in the header (:func:`featstore.units.percent_columns`), one
    decimal; other floats with 4 significant digits; at most ``max_rows`` rows."""

    from featstore.units import percent_columns

    shown = percent_columns(frame)
    rates = {c for c in shown.columns if c not in frame.columns or c.endswith("_pct")}

    def cell(column: str, value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.1f}" if column in rates else f"{value:.4g}"
        return str(value)

    rows = [[cell(c, v) for c, v in zip(shown.columns, row, strict=True)] for row in shown.head(max_rows).iter_rows()]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(shown.columns)]
    numeric = [shown.schema[c].is_numeric() for c in shown.columns]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    out = [line(list(shown.columns))] + [line(r) for r in rows]
    if shown.height > max_rows:
        out.append(f"... {shown.height - max_rows} more rows")
    return "\n".join(out)


def print_table(frame: object, max_rows: int = 40) -> None:
    """Print :func:`table_text` of ``frame`` as plain lines (never a Rich/polars box)."""
    print_line(table_text(frame, max_rows))
