"""Command-line entry points: ``featstore``, ``probes``, ``finetune`` and the umbrella
``crossling`` (all three as sub-commands, plus ``demo``, ``study`` and ``report``).

This file only assembles Typer apps. Each command lives in a ``commands`` module of its
package, which parses options, builds a typed config and calls one library function.
The registry below is explicit: adding a command means adding its module here.
"""

from __future__ import annotations

import typer

from featstore.commands import corpora as fs_corpora
from featstore.commands import extract as fs_extract
from featstore.commands import models as fs_models
from featstore.commands import splits as fs_splits
from featstore.commands import synth as fs_synth
from featstore.console import complete_short_help, guard_app, run_app
from finetune import commands as ft_commands
from probes.commands import human as pr_human
from probes.commands import layerwise as pr_layerwise
from probes.commands import sed as pr_sed
from study import commands as st_commands

# plain help (no Rich boxes, no `<bool>` metavars, no markup read from help strings)
# help up to 120 columns wide where the terminal allows it (click's default stops at 80)
_SETTINGS = {"no_args_is_help": True, "pretty_exceptions_show_locals": False, "rich_markup_mode": None,
             "context_settings": {"max_content_width": 120}}

featstore_app = typer.Typer(help="Corpora, folds, the demo corpus, SSL models and the feature cache.", **_SETTINGS)
probes_app = typer.Typer(help="Layer-wise probes, listening tests and speech emotion diarization.", **_SETTINGS)
finetune_app = typer.Typer(help="PEFT (LoRA, bottleneck adapters, weighted gating) and two-stage training.", **_SETTINGS)
app = typer.Typer(help="Cross-lingual SER with SSL models, compared with human listeners.", **_SETTINGS)

FEATSTORE_COMMANDS = (fs_corpora, fs_splits, fs_synth, fs_models, fs_extract)
PROBES_COMMANDS = (pr_layerwise, pr_human, pr_sed)
FINETUNE_COMMANDS = (ft_commands,)
STUDY_COMMANDS = (st_commands,)

for module in FEATSTORE_COMMANDS:
    module.register(featstore_app)
for module in PROBES_COMMANDS:
    module.register(probes_app)
for module in FINETUNE_COMMANDS:
    module.register(finetune_app)
for module in STUDY_COMMANDS:
    module.register(app)

app.add_typer(featstore_app, name="featstore", short_help=featstore_app.info.help)
app.add_typer(probes_app, name="probes", short_help=probes_app.info.help)
app.add_typer(finetune_app, name="finetune", short_help=finetune_app.info.help)

for typer_app in (app, featstore_app, probes_app, finetune_app):
    guard_app(typer_app)  # the one error boundary (featstore.console) around every command
    complete_short_help(typer_app)  # whole first sentences in the command lists


def main() -> None:
    """Console script ``crossling``."""
    run_app(app, prog_name="crossling")


def featstore_main() -> None:
    """Console script ``featstore``."""
    run_app(featstore_app, prog_name="featstore")


def probes_main() -> None:
    """Console script ``probes``."""
    run_app(probes_app, prog_name="probes")


def finetune_main() -> None:
    """Console script ``finetune``."""
    run_app(finetune_app, prog_name="finetune")


if __name__ == "__main__":
    main()
