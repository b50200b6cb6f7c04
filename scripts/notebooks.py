"""The notebooks' runner (run it through scripts/notebooks, which sets up
the Python environment). See scripts/notebooks for the commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
# Longest a cell may run before the notebook fails.
CELL_TIMEOUT = 600


def notebooks() -> list[Path]:
    found = sorted(NOTEBOOKS.glob("*.ipynb"))
    if not found:
        sys.exit(f"no notebook in {NOTEBOOKS}")
    return found


def execute(path: Path, env: dict[str, str], cwd: Path) -> nbformat.NotebookNode:
    """Executes `path` top to bottom with `env`; raises on the first error."""
    nb = nbformat.read(path, as_version=4)
    saved = os.environ.copy()
    os.environ.update(env)
    try:
        NotebookClient(
            nb,
            timeout=CELL_TIMEOUT,
            kernel_name="python3",
            resources={"metadata": {"path": str(cwd)}},
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb


def binary(profile: str) -> Path:
    path = REPO / "target" / profile / "prognos"
    if not path.is_file():
        build = "--release " if profile == "release" else ""
        sys.exit(f"{path} is missing: build it with `cargo build {build}-p prognos`")
    return path


def test() -> None:
    """Every notebook, executed in a temporary copy of notebooks/ in quick
    mode with the binary the tests built; then the bad-input check."""
    env = {
        "PROGNOS_BIN": os.environ.get("PROGNOS_BIN", str(binary("debug"))),
        "PROGNOS_NOTEBOOK_QUICK": "1",
        # The copy runs outside the repository: where it is.
        "PROGNOS_REPO": str(REPO),
    }
    failed = []
    with tempfile.TemporaryDirectory(prefix="prognos-notebooks-") as tmp:
        copy = Path(tmp) / "notebooks"
        shutil.copytree(NOTEBOOKS, copy)
        total = time.perf_counter()
        for path in notebooks():
            t = time.perf_counter()
            try:
                execute(copy / path.name, env, copy)
                print(f"notebook {path.name}: ok in {time.perf_counter() - t:.0f} s", flush=True)
            except CellExecutionError as e:
                failed.append(path.name)
                print(f"notebook {path.name}: FAILED after {time.perf_counter() - t:.0f} s\n{e}", flush=True)
        print(f"notebooks: {len(notebooks()) - len(failed)} ran, {len(failed)} failed, "
              f"{time.perf_counter() - total:.0f} s in all", flush=True)

        # A missing binary or data folder stops every notebook at its first
        # cell, saying what to run.
        missing = {
            "binary": ({"PROGNOS_BIN": str(Path(tmp) / "no-such-prognos")}, "cargo build"),
            "NAB folder": (
                {"PROGNOS_BIN": env["PROGNOS_BIN"], "PROGNOS_NAB": str(Path(tmp) / "no-nab")},
                "../shared/data/nab",
            ),
        }
        for path in notebooks():
            nb = nbformat.read(copy / path.name, as_version=4)
            first = next(c for c in nb.cells if c.cell_type == "code")
            nb.cells = [first]
            probe = copy / f"probe-{path.name}"
            nbformat.write(nb, probe)
            for what, (probe_env, says) in missing.items():
                try:
                    execute(probe, {**probe_env, "PROGNOS_REPO": str(REPO)}, copy)
                    failed.append(f"{path.name} (its first cell ran without a {what})")
                except CellExecutionError as e:
                    if says not in str(e):
                        failed.append(f"{path.name} (no '{says}' in the first cell's error without a {what})")
        if not any("first cell" in f for f in failed):
            print("notebooks: a missing binary or NAB folder stops each at its first cell with what to run")
    if failed:
        sys.exit(f"notebooks failed: {', '.join(failed)}")


def html() -> None:
    out = REPO / "target" / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    for path in notebooks():
        subprocess.run(
            [sys.executable, "-m", "nbconvert", "--to", "html", "--output-dir", str(out), str(path)],
            check=True,
            capture_output=True,
        )
        print(out / path.with_suffix(".html").name)


def refresh() -> None:
    env = {"PROGNOS_BIN": os.environ.get("PROGNOS_BIN", str(binary("release")))}
    for path in notebooks():
        t = time.perf_counter()
        nb = execute(path, env, NOTEBOOKS)
        nbformat.write(nb, path)
        print(f"notebook {path.name}: refreshed in {time.perf_counter() - t:.0f} s", flush=True)


def lab() -> None:
    os.execv(sys.executable, [sys.executable, "-m", "jupyterlab", str(NOTEBOOKS)])


COMMANDS = {"test": test, "html": html, "refresh": refresh, "lab": lab}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: scripts/notebooks [{'|'.join(COMMANDS)}]")
    COMMANDS[sys.argv[1]]()
