"""Every command's --help has an example (sqlite-utils' test_commands_have_help is the model).

The click tree is walked from `cli.main`, so a command registered anywhere (cli.py or a module
of ise_es/commands) is checked, and so is every group: `ise-es GROUP --help` is where a
newcomer looks first.
"""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from cli import main


def walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path), command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(main, ("ise-es",)))


def test_the_walk_finds_the_commands_of_every_module() -> None:
    names = {name for name, _ in COMMANDS}
    # one from cli.py, one group and one command from ise_es/commands, a nested group
    assert {"ise-es db upgrade", "ise-es record", "ise-es serve", "ise-es project all"} <= names
    assert len(COMMANDS) > 30


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_help_has_an_example(name: str, command: click.Command) -> None:
    args = name.split()[1:]
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert command.help, f"{name} has no help text"
    _, sep, example = result.output.partition("Example:")
    assert sep, f"{name} --help has no 'Example:' block"
    lines = [line.strip() for line in example.splitlines()]
    shown = [line for line in lines if line.startswith("ise-es ")]
    assert shown, f"{name} --help: the example shows no ise-es command line"
    assert any(line.startswith(name) for line in shown), (
        f"{name} --help: no example line runs {name!r} (found {shown[0]!r})"
    )


def test_every_sandbox_option_offers_the_backend_registry() -> None:
    """`--sandbox` is declared once (ise_es/commands/options.py) with a copy of the registry's
    names, so that `--help` does not load the sandbox package; this keeps the copy equal to
    `ise_es.sandbox.BACKENDS` in every command that takes the option."""
    from ise_es.sandbox import BACKENDS

    offered = {
        name: param.type.choices
        for name, command in COMMANDS
        for param in command.params
        if isinstance(param, click.Option) and "--sandbox" in param.opts
        if isinstance(param.type, click.Choice)
    }
    assert {"ise-es record", "ise-es replay"} <= offered.keys()
    assert {name: tuple(choices) for name, choices in offered.items()} == dict.fromkeys(
        offered, BACKENDS
    )
