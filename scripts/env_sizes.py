"""Size of each Python environment, and of what in it is only there for development and tests.

    python scripts/env_sizes.py .venv=requirements.txt .venv-runtime=include/runtime-requirements.txt
    python scripts/env_sizes.py --json VENV=REQUIREMENTS ...

A venv's size is every byte below its directory (symlinks not followed). The distributions' own sizes come from
their RECORD files, read by the venv's own interpreter, so this works for environments with other numpy or
Python versions than the one running it. "Not needed to deploy" counts the installed distributions that no
deployment requirement needs, even through an extra: the test tools (pytest, moto, ruff and what only they pull
in) and leftovers of earlier installs. That is what the split of the requirements keeps out of an image.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

# Run by each venv's interpreter: {distribution: (bytes, [its requirement strings])}.
_PROBE = r"""
import json, re
from importlib import metadata
from pathlib import Path
out = {}
for dist in metadata.distributions():
    name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
    size = 0
    for f in dist.files or []:
        try:
            size += Path(dist.locate_file(f)).stat().st_size
        except OSError:
            pass
    out[name] = [size, list(dist.requires or [])]
print(json.dumps(out))
"""

ENV_TOOLS = frozenset({"pip", "uv"})


def tree_bytes(root: Path) -> int:
    total = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                pass
    return total


def distributions(venv: Path) -> dict[str, tuple[int, list[str]]]:
    python = venv / "bin" / "python"
    result = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, check=True)
    return {name: (size, requires) for name, (size, requires) in json.loads(result.stdout).items()}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def parse_requirement(line: str) -> tuple[str, frozenset[str], str | None] | None:
    """(name, extras it asks for, the extra it is conditional on) of one requirement string."""
    match = _REQUIREMENT.match(line)
    if not match:
        return None
    extras = frozenset(normalise(e) for e in (match.group(2) or "").split(",") if e.strip())
    condition = _EXTRA_MARKER.search(line.partition(";")[2])
    return normalise(match.group(1)), extras, normalise(condition.group(1)) if condition else None


def requirement_roots(files: list[Path]) -> set[tuple[str, frozenset[str]]]:
    """What requirements files ask for: (distribution, extras); -r/-c and option lines are skipped."""
    roots: set[tuple[str, frozenset[str]]] = set()
    for file in files:
        for line in file.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            parsed = parse_requirement(line) if line and not line.startswith("-") else None
            if parsed:
                roots.add(parsed[:2])
    return roots


def not_needed(dists: dict[str, tuple[int, list[str]]], roots: set[tuple[str, frozenset[str]]]) -> set[str]:
    """Installed distributions that the roots do not require, with the extras they ask for: test tools and
    leftovers of earlier installs."""
    seen: set[tuple[str, frozenset[str]]] = set()
    stack = [root for root in roots if root[0] in dists]
    while stack:
        name, extras = stack.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for line in dists[name][1]:
            parsed = parse_requirement(line)
            if parsed and parsed[0] in dists and (parsed[2] is None or parsed[2] in extras):
                stack.append(parsed[:2])
    return set(dists) - {name for name, _extras in seen} - ENV_TOOLS


def measure(venv: Path, roots: set[tuple[str, frozenset[str]]]) -> dict[str, object]:
    dists = distributions(venv)
    dev = not_needed(dists, roots)
    return {
        "venv": str(venv),
        "bytes": tree_bytes(venv),
        "distributions": len(dists),
        "not_needed": sorted(dev),
        "not_needed_bytes": sum(dists[name][0] for name in dev),
        "largest": sorted(((size, name) for name, (size, _r) in dists.items()), reverse=True)[:5],
    }


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"


def markdown(rows: list[dict[str, object]]) -> str:
    lines = ["| environment | size | distributions | not needed to deploy | largest |", "|---|---|---|---|---|"]
    for row in rows:
        largest = ", ".join(f"{name} {_mib(size)}" for size, name in row["largest"])  # type: ignore[union-attr]
        lines.append(
            f"| `{row['venv']}` | {_mib(row['bytes'])} | {row['distributions']} | "  # type: ignore[arg-type]
            f"{len(row['not_needed'])} ({_mib(row['not_needed_bytes'])}) | {largest} |"  # type: ignore[arg-type]
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("venvs", nargs="+", help="VENV=REQUIREMENTS[,REQUIREMENTS...]: the deployment "
                        "requirements (and local distributions) that venv must satisfy")
    args = parser.parse_args(argv)
    targets: list[tuple[Path, set[tuple[str, frozenset[str]]]]] = []
    for spec in args.venvs:
        venv, _, files = spec.partition("=")
        paths = [Path(f) for f in files.split(",") if f]
        if not (Path(venv) / "bin" / "python").exists():
            print(f"{venv!r} is not a virtual environment (no bin/python)", file=sys.stderr)
            return 2
        unreadable = [str(p) for p in paths if not p.is_file()]
        if not paths or unreadable:
            print(f"{spec!r}: give VENV=REQUIREMENTS files that exist ({', '.join(unreadable) or 'none given'})",
                  file=sys.stderr)
            return 2
        local = {(normalise(n), frozenset()) for n in ("sm-explain-ops", "sm-explain-runtime",
                                                      "sm-explain-contracts")}
        targets.append((Path(venv), requirement_roots(paths) | local))
    rows = [measure(venv, roots) for venv, roots in targets]
    print(json.dumps(rows, indent=2) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
