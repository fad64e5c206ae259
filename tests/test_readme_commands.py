"""Every `helpdesk` command the README shows works as written (those that need no running
services are run here; the others are run by tests/test_cli_ops.py against real servers)."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
HELPDESK = str(Path(sys.executable).with_name("helpdesk"))


def readme_commands(prefix: str) -> list[str]:
    found = set()
    for match in re.finditer(r"`(" + re.escape(prefix) + r" [^`]+)`", README):
        found.add(match.group(1).replace("\\|", "|"))
    return sorted(found)


def test_the_readme_names_the_two_commands_and_the_makefile_has_them():
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in README and "make test" in README
    for target in ("demo:", "test:", "stack-up:", "stack-down:"):
        assert re.search(rf"^{target}", makefile, re.M), target


def test_every_helpdesk_command_in_the_readme_exists_with_the_options_it_shows():
    commands = readme_commands("helpdesk")
    assert len(commands) >= 6
    for command in commands:
        words = shlex.split(command)[1:]
        if len(words) > 1 and "|" in words[1]:  # `helpdesk stack up|down|status`
            paths = [[words[0], sub] for sub in words[1].split("|")]
        else:
            path = []
            for word in words:  # the sub-command path ends at the first option or placeholder
                if word.startswith("-") or word.isupper() or "/" in word or word.endswith("…"):
                    break
                path.append(word)
            paths = [path]
        for path in paths:
            result = subprocess.run([HELPDESK, *path, "--help"], capture_output=True, text=True, cwd=ROOT)
            assert result.returncode == 0, f"{command}: {result.stderr}"
            for option in re.findall(r"--[a-z-]+", command):
                assert option in result.stdout, f"{command}: {option} missing from --help"


def test_policy_validate_as_the_readme_shows_it():
    result = subprocess.run([HELPDESK, "policy", "validate", "config/classification.yaml", "config/sla.yaml",
                             "config/compensation.yaml", "config/followup.yaml"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
