"""Docs and CLI stay in step: every command and option is documented."""
from __future__ import annotations

import re
from pathlib import Path

import typer.main

from copyscope.cli import app

REPO = Path(__file__).resolve().parents[1]
CLI_DOC = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")


def _commands():
    group = typer.main.get_command(app)
    return group, sorted(group.commands.items())


def _leaves():
    """(full name, click command) for every runnable command, sub-commands included."""
    _, commands = _commands()
    out = []
    for name, cmd in commands:
        subs = getattr(cmd, "commands", None)
        if subs:
            out += [(f"{name} {sub}", c) for sub, c in sorted(subs.items())]
        else:
            out.append((name, cmd))
    return out


def test_every_command_has_a_section():
    _, commands = _commands()
    assert commands, "no commands registered"
    missing = [name for name, _ in commands if f"### `copyscope {name}`" not in CLI_DOC]
    missing += [name for name, _ in _leaves() if " " in name and f"#### `copyscope {name}`" not in CLI_DOC]
    assert not missing, f"undocumented commands: {missing}"


def test_every_option_is_documented():
    group, _ = _commands()
    missing = []
    for name, cmd in _leaves():
        head = f"#### `copyscope {name}`" if " " in name else f"### `copyscope {name}`"
        section = CLI_DOC.split(head, 1)[1].split("\n### ", 1)[0].split("\n#### ", 1)[0]
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt != "--help" and opt not in section:
                    missing.append(f"{name} {opt}")
    for param in group.params:
        for opt in param.opts:
            if opt.startswith("--") and opt != "--help" and opt not in CLI_DOC.split("## Commands")[0]:
                missing.append(f"global {opt}")
    assert not missing, f"undocumented options: {missing}"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1)
    lines = [ln.split("#")[0].strip() for ln in block.strip().splitlines()]
    assert lines[:2] == ["make demo", "make test"]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_documented_exit_codes_match_errors_module():
    from copyscope import errors
    table = CLI_DOC.split("## Exit codes", 1)[1].split("##", 1)[0]
    for cls in (errors.UsageError, errors.InputError, errors.WorkspaceError, errors.NotFoundError, errors.PluginError):
        assert f"| {cls.exit_code} |" in table, cls.__name__
    assert f"| {errors.EXIT_INTERNAL} |" in table
