#!/usr/bin/env python3
"""Keeps the commands of README.md and docs/ true: every shell command they show is either run
by this check (README tour blocks, in a scratch directory), or names the test or script that runs
it, or says why nothing here runs it. A README that shows a command nobody runs drifts silently.

Each ```sh block must follow a marker line:
  <!-- docs-check: run -->                       the block runs here (--run), in order
  <!-- docs-check: ENTRY; ENTRY; ... -->         one entry per command of the block, in order:
      test:Suite.Name      a CTest-run gtest whose body names the command's subcommand (or script)
                           and every recipes/ file the command names
      script:scripts/X     a script of this repository that runs the command (or is the command)
      not-run:REASON       nothing on this machine runs it (REASON says why, e.g. it needs a GPU)
A command is a line of the block that is not a comment, a variable assignment, or part of a
heredoc, with backslash continuations joined.

  scripts/check_docs.py                 check the markers (what CTest's `docs` label runs first)
  scripts/check_docs.py --run [--quickstart-run DIR]
                                        also run the tour blocks; runs/quickstart is DIR (the
                                        quickstart's run directory) or else a stand-in made by
                                        `k2forge init` (an untrained model of the same recipe)
Prints one JSON summary line (commands, run here, by tests, by scripts, not run) and exits 1
listing every problem.
"""
import argparse
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

root = pathlib.Path(__file__).resolve().parent.parent
marker_re = re.compile(r"^<!-- docs-check: (.*) -->$")
test_re = re.compile(r"^\s*TEST(?:_F|_P)?\(\s*(\w+)\s*,\s*(\w+)\s*\)", re.M)


def doc_files():
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


def commands_of(block_lines):
    """The commands of a shell block: continuations joined; comments, assignments, heredocs out."""
    commands, current, heredoc_end = [], "", None
    for line in block_lines:
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        current += (" " if current else "") + stripped.rstrip("\\").strip()
        if stripped.endswith("\\"):
            continue
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", current)
        if heredoc:
            heredoc_end = heredoc.group(1)
        if not re.match(r"^\w+=\S*$", current):
            commands.append(current)
        current = ""
    return commands


def blocks_of(path):
    """(line number, marker text or None, lines, commands) for every ```sh block of a file."""
    lines = path.read_text().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            match = marker_re.match(lines[j].strip()) if j >= 0 else None
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            body = lines[i + 1:end]
            blocks.append((i + 1, match.group(1).strip() if match else None, body, commands_of(body)))
            i = end
        i += 1
    return blocks


def test_sources():
    """Suite.Name -> the text of the source file that defines the test."""
    sources = {}
    for source in (root / "tests").rglob("*.cpp"):
        text = source.read_text()
        for match in test_re.finditer(text):
            sources[f"{match.group(1)}.{match.group(2)}"] = text
    return sources


def normalised(command):
    """A command without its comment and with `k2forge` for the $k shorthand."""
    return " ".join(command.split(" #")[0].replace("$k ", "k2forge ").split())


def subcommand_of(command):
    """What identifies a command in a test: the k2forge subcommand, else the script or program."""
    words = shlex.split(command.split("#")[0].split("<<")[0].split(">")[0], posix=True)
    for k, word in enumerate(words):
        if word in ("$k", "k2forge") or word.endswith("/k2forge"):
            rest = words[k + 1:k + 3]
            if len(rest) == 2 and rest[0] in ("bench", "data", "tokenizer") and not rest[1].startswith("-"):
                return " ".join(rest)  # the subcommand's own verb: `tokenizer encode`, `bench data`
            return rest[0] if rest else "k2forge"
    for word in words:
        if word.startswith("scripts/"):
            return word
    return words[0] if words else ""


def check_entry(entry, command, sources, tour_commands):
    """A problem with one command's entry, or None."""
    kind, _, value = entry.partition(":")
    value = value.strip()
    if kind == "tour":
        return None if normalised(command) in tour_commands else "not in a README tour block"
    if kind == "not-run":
        return None if value else "not-run needs a reason"
    if kind == "script":
        script = root / value
        if not script.is_file():
            return f"script {value} does not exist"
        name = subcommand_of(command)
        if value not in command and name not in script.read_text():
            return f"{value} does not run `{name}`"
        return None
    if kind == "test":
        body = sources.get(value)
        if body is None:
            return f"no test {value} in tests/"
        name = subcommand_of(command)
        needle = pathlib.Path(name).name if name.startswith("scripts/") else name
        if f'"{needle}' not in body and f" {needle} " not in body and f"{needle}\"" not in body:
            return f"test {value} does not run `{needle}`"
        for recipe in re.findall(r"recipes/([\w.]+\.toml)", command):
            if recipe not in body:
                return f"test {value} does not use recipes/{recipe}"
        return None
    return f"unknown entry '{entry}' (expected test:, script:, tour or not-run:)"


def check_markers():
    """Every block's marker and entries; returns (problems, summary, the tour's lines)."""
    sources = test_sources()
    problems, tour = [], []
    tour_commands = {normalised(c) for path in doc_files() for _, marker, _, commands in blocks_of(path)
                     if marker == "run" for c in commands}
    summary = {"commands": 0, "run_here": 0, "by_tests": 0, "by_scripts": 0, "not_run": 0}
    not_run = []
    for path in doc_files():
        name = path.relative_to(root)
        for line, marker, body, commands in blocks_of(path):
            where = f"{name}:{line}"
            summary["commands"] += len(commands)
            if marker is None:
                problems.append(f"{where}: a sh block without a <!-- docs-check: ... --> marker")
                continue
            if marker == "run":
                if path.name != "README.md":
                    problems.append(f"{where}: only README tour blocks run here")
                summary["run_here"] += len(commands)
                tour += body
                continue
            entries = [e.strip() for e in marker.split(";") if e.strip()]
            if len(entries) != len(commands):
                problems.append(f"{where}: {len(commands)} commands but {len(entries)} entries: {commands}")
                continue
            for entry, command in zip(entries, commands):
                problem = check_entry(entry, command, sources, tour_commands)
                if problem:
                    problems.append(f"{where}: `{command}`: {problem}")
                kind = entry.partition(":")[0]
                summary[{"test": "by_tests", "script": "by_scripts", "tour": "run_here"}.get(kind, "not_run")] += 1
                if kind == "not-run":
                    not_run.append(f"{where}: {subcommand_of(command)}: {entry.partition(':')[2].strip()}")
    summary["not_run_reasons"] = not_run
    return problems, summary, tour


def run_tour(tour, quickstart_run):
    """Runs the tour blocks as one bash script in a scratch directory; returns its exit status."""
    build = pathlib.Path(os.environ.get("K2F_BUILD_DIR", root / "build"))
    binary = build / "bin" / "k2forge"
    if not binary.is_file():
        print(f"check_docs: {binary} does not exist (build first: scripts/build.sh k2forge)", file=sys.stderr)
        return 1
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="k2f-docs-tour-"))
    try:
        (scratch / "build" / "bin").mkdir(parents=True)
        (scratch / "build" / "bin" / "k2forge").symlink_to(binary)
        for shared in ("assets", "recipes", "scripts"):
            (scratch / shared).symlink_to(root / shared)
        (scratch / "runs").mkdir()
        if quickstart_run:
            (scratch / "runs" / "quickstart").symlink_to(pathlib.Path(quickstart_run).resolve())
        else:
            print("check_docs: stand-in for the quickstart's model: k2forge init (untrained) of recipes/tiny_pretrain.toml")
            subprocess.run([str(binary), "init", "--recipe", "recipes/tiny_pretrain.toml", "--set",
                            "train.run_dir=runs/quickstart", "--out", "runs/quickstart/hf"],
                           cwd=scratch, check=True, stdout=subprocess.DEVNULL)
        script = "set -euo pipefail\nset -x\n" + "\n".join(tour) + "\n"
        status = subprocess.run(["bash", "-c", script], cwd=scratch).returncode
        print(f"check_docs: the README tour exited {status} (in {scratch})")
        return status
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="store_true", help="also run the README tour blocks")
    parser.add_argument("--quickstart-run", help="the quickstart's run directory (default: a stand-in)")
    args = parser.parse_args()
    problems, summary, tour = check_markers()
    for problem in problems:
        print(f"check_docs: {problem}", file=sys.stderr)
    status = 1 if problems else 0
    if args.run and not problems:
        status = run_tour(tour, args.quickstart_run)
        summary["tour_exit"] = status
    print(json.dumps(summary))
    return status


if __name__ == "__main__":
    sys.exit(main())
