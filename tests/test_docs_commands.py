"""Every `spinfits ...` command line in README.md, docs/*.md and examples/ names a real subcommand
and only real flags of it (checked against the CLI's argparse parser, without running anything:
running them all would take far too long for CI); the SLURM script and the KubeRay RayJob
manifest in examples/ parse (no cluster is here to run them)."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from spinfits.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SBATCH = ROOT / "examples" / "slurm" / "spinfits.sbatch"
RAYJOB = ROOT / "examples" / "kuberay" / "rayjob.yaml"
#: A command ends at a shell separator, the end of a code span, or a table cell.
_END = re.compile(r"&&|;|`|\s\|\s{0,3}(?=[a-z]|$)")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _code(markdown: str) -> list[str]:
    """Code of a Markdown file: fenced and indented blocks (backslash continuations joined; in a
    console transcript, only the commands after its ``$`` prompts) and inline code spans."""
    out: list[str] = []
    for number, part in enumerate(re.split(r"^```.*$", markdown, flags=re.M)):
        if number % 2:  # a fenced block
            lines = part.splitlines()
            prompts = [line[2:] for line in lines if line.startswith("$ ")]
            out.extend(prompts or lines)
            continue
        for line in part.splitlines():
            out.extend([line] if line.startswith("    ") else re.findall(r"`([^`]+)`", line))
    return "\n".join(out).replace("\\\n", " ").splitlines()


def commands(text: str) -> list[str]:
    """Each `spinfits WORDS...` in the code lines, cut where the command ends."""
    found = []
    for line in text:
        for match in re.finditer(r"(?<![\w./-])spinfits\s+(?=[a-z-])", line):
            rest = line[match.end() :]
            end = _END.search(rest)
            found.append("spinfits " + (rest[: end.start()] if end else rest).strip())
    return found


def problems(command: str, parser: argparse.ArgumentParser) -> list[str]:
    """What in ``command`` the parser does not know: its subcommand path, or a --flag."""
    words = command.split()[1:]
    path = ["spinfits"]
    while words and (choices := _subparsers(parser)):
        word = words[0].strip("'\"")
        if word.startswith("-"):
            break
        if word == "...":
            return []  # `spinfits store ...`: any of them
        alternatives = [name for name in word.split("|") if name != "..."]  # a synopsis: a|b|...
        unknown = [name for name in alternatives if name not in choices]
        if unknown or not alternatives:
            return [f"{' '.join(path)} has no subcommand {(unknown or [word])[0]!r} (in: {command})"]
        if len(alternatives) > 1 or "|" in word:
            return []  # several subcommands: their flags are not told here
        parser, path, words = choices[word], [*path, word], words[1:]
    known = {option for action in parser._actions for option in action.option_strings}
    flags = {
        flag.split("=")[0] for flag in re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*(?:=\S*)?", " ".join(words))
    }
    return [f"{' '.join(path)} has no flag {flag} (in: {command})" for flag in sorted(flags - known)]


def _all_problems(sources: dict[str, list[str]]) -> tuple[int, list[str]]:
    parser, count, found = build_parser(), 0, []
    for name, text in sources.items():
        for command in commands(text):
            count += 1
            found += [f"{name}: {problem}" for problem in problems(command, parser)]
    return count, found


def test_the_checker_catches_unknown_subcommands_and_flags():
    parser = build_parser()
    assert problems("spinfits store log STORE --endpoint-url U", parser) == []
    assert problems("spinfits precompute --dataset D --commit-every-rows 5", parser) == [
        "spinfits precompute has no flag --commit-every-rows (in: spinfits precompute --dataset D "
        "--commit-every-rows 5)"
    ]
    assert problems("spinfits store nope S", parser)[0].startswith("spinfits store has no subcommand 'nope'")
    assert commands(["    spinfits data info X.npz && spinfits --version; echo `spinfits demo --out P`"]) == [
        "spinfits data info X.npz",
        "spinfits --version",
        "spinfits demo --out P",
    ]
    assert problems("spinfits store init|log|... S", parser) == []  # a synopsis of alternatives
    assert problems("spinfits store init|nope S", parser)[0].startswith(
        "spinfits store has no subcommand 'nope'"
    )


def test_every_command_in_readme_and_docs_names_real_subcommands_and_flags():
    count, found = _all_problems({path.name: _code(path.read_text()) for path in DOCS})
    assert count > 40  # the files are read: README and docs hold dozens of commands
    assert not found, "\n".join(found)


def test_slurm_script_parses_and_names_real_flags():
    text = SBATCH.read_text()
    bash = shutil.which("bash")
    assert bash is not None
    checked = subprocess.run([bash, "-n", str(SBATCH)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    directives = dict(re.findall(r"^#SBATCH --([a-z-]+)=(\S+)", text, flags=re.M))
    assert int(directives["nodes"]) >= 2 and "tasks-per-node" in directives
    assert "ray start --head" in text and 'ray start --address="$RAY_ADDRESS"' in text
    lines = [
        re.sub(r"\s#.*", "", line)
        for line in text.replace("\\\n", " ").splitlines()
        if not line.startswith("#")
    ]
    count, found = _all_problems({SBATCH.name: lines})
    assert count == 2 and not found, found  # precompute and train
    assert {command.split()[1] for command in commands(lines)} == {"precompute", "train"}


def test_kuberay_rayjob_parses_and_names_real_flags():
    job = yaml.safe_load(RAYJOB.read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    cluster = spec["rayClusterSpec"]
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"]
    assert all(group["template"]["spec"]["containers"] for group in cluster["workerGroupSpecs"])
    assert spec["shutdownAfterJobFinishes"] is True
    entrypoint = spec["entrypoint"]
    assert entrypoint.startswith('bash -c "') and entrypoint.endswith('"')
    inner = entrypoint[len('bash -c "') : -1]
    count, found = _all_problems({RAYJOB.name: [inner]})
    assert count == 2 and not found, found
    assert [command.split()[1] for command in commands([inner])] == ["precompute", "train"]


@pytest.mark.parametrize("path", [SBATCH, RAYJOB], ids=lambda p: p.name)
def test_examples_write_only_to_absolute_or_s3_outputs(path):
    """A relative --store / --runs-dir inside a cluster job would be refused (cluster.ray_job)."""
    text = path.read_text()
    for flag in ("--store", "--runs-dir"):
        for value in re.findall(rf"{flag} (\S+)", text):
            assert value.strip('"').startswith(("/", "$", "s3://")), (flag, value)
