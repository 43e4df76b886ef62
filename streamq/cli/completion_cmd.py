"""``streamq completion SHELL``: print the shell completion script."""

from __future__ import annotations

import enum
from typing import Annotated

import typer


class Shell(str, enum.Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion(shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.")]) -> None:
    """Print the completion script for SHELL (the same files as in completions/).

    Completion asks streamq itself for candidates, so it stays true as commands
    change; it never imports boto3, so it is fast.

    Examples:

      streamq completion bash > ~/.local/share/bash-completion/completions/streamq

      streamq completion zsh > "${fpath[1]}/_streamq"

      streamq completion fish > ~/.config/fish/completions/streamq.fish
    """
    typer.echo(script(shell.value), nl=False)


def script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="streamq", complete_var="_STREAMQ_COMPLETE",
                                 shell=shell) + "\n"


def register(app: typer.Typer) -> None:
    app.command("completion")(completion)
