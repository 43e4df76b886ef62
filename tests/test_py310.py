"""Python 3.10 is supported (requires-python >=3.10): what differs there stays covered
when the suite runs on 3.11+."""

from __future__ import annotations

import inspect
import typing
from typing import Annotated

import typer

from tests.helpers import CliRunner


def test_an_option_keeps_its_names_when_its_hint_is_wrapped_in_optional() -> None:
    """Python 3.10's get_type_hints wraps the hint of a parameter defaulting to None in
    Optional[...]; typer then missed the Annotated option inside it, so on 3.10
    `refire --id` became `--ids` and `-o` vanished from every command."""
    from streamq.cli.common import with_common_params

    wrapped = Annotated[str | None, typer.Option("--id", "-i", help="A key.")] | None

    def source(settings: object, ids: wrapped = None) -> None:  # type: ignore[valid-type]
        del settings, ids

    def target(**kwargs: object) -> None:
        del kwargs

    source.__annotations__["ids"] = wrapped  # as 3.10's get_type_hints returns it
    with_common_params(target, source)
    ann = inspect.signature(target).parameters["ids"].annotation
    assert typing.get_origin(ann) is Annotated
    info = typing.get_args(ann)[1]
    assert isinstance(info, typer.models.OptionInfo) and "-i" in info.param_decls


def test_short_and_renamed_options_exist(cli: CliRunner) -> None:
    for args, option in ((("refire", "--help"), "--id "), (("config", "show", "--help"), "-o,"),
                         (("list", "--help"), "-o,")):
        res = cli(*args)
        assert res.code == 0 and option in res.out, (args, res.out)
