"""What every notebook shares: where the `prognos` binary and the data are,
and how to run the binary. The numbers the notebooks show come from the
binary itself (its CSV and JSON outputs), never from Python re-implementations
of its models.

Paths stay inside the repository and ../shared:
- the binary: $PROGNOS_BIN, else target/release/prognos, else target/debug/prognos
  (the newer of the two when both exist);
- NAB: $PROGNOS_NAB, else ../shared/data/nab beside the repository.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from pathlib import Path

import pandas as pd

# The repository: this file's parent folder, unless the runner executes a
# copy of notebooks/ elsewhere and says where the repository is.
REPO = Path(os.environ.get("PROGNOS_REPO") or Path(__file__).resolve().parent.parent)
SHARED = REPO.parent / "shared"


class SetupError(RuntimeError):
    """Something the notebook needs is missing; the message says what to run."""


def binary() -> Path:
    """The prognos binary, or a SetupError naming the command that builds it."""
    given = os.environ.get("PROGNOS_BIN")
    if given:
        path = Path(given)
        if not path.is_file():
            raise SetupError(
                f"PROGNOS_BIN={given} does not exist: build prognos with "
                "`cargo build --release -p prognos` (from the repository root) "
                "or point PROGNOS_BIN at a built binary."
            )
        return path
    built = [
        p
        for p in (REPO / "target/release/prognos", REPO / "target/debug/prognos")
        if p.is_file()
    ]
    if not built:
        raise SetupError(
            "No prognos binary: build it with `cargo build --release -p prognos` "
            f"in {REPO} (or set PROGNOS_BIN to one)."
        )
    return max(built, key=lambda p: p.stat().st_mtime)


def nab() -> Path:
    """The NAB sample (data/ and labels/), or a SetupError."""
    root = Path(os.environ.get("PROGNOS_NAB", SHARED / "data/nab"))
    if not (root / "data").is_dir() or not (root / "labels/combined_windows.json").is_file():
        raise SetupError(
            f"No NAB data in {root}: the notebooks read ../shared/data/nab beside the "
            "repository (data/<category>/<file>.csv and labels/combined_windows.json); "
            "check out ../shared there or set PROGNOS_NAB to such a folder."
        )
    return root


def check() -> str:
    """Checks the binary and the data; returns a line saying which are used."""
    b, n = binary(), nab()
    version = run("--version").strip()
    return f"{version} at {b.relative_to(REPO) if b.is_relative_to(REPO) else b}; NAB at {n}"


def run(*args: str | os.PathLike, timeout: float = 900) -> str:
    """Runs `prognos ARGS…` from the repository root; returns its stdout.
    A failure raises with the command and the end of its stderr."""
    cmd = [str(binary()), *map(str, args)]
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), "NO_COLOR": "1"}
    done = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"`prognos {' '.join(map(str, args))}` failed ({done.returncode}):\n{tail}")
    return done.stdout


def run_timed(*args: str | os.PathLike, timeout: float = 900) -> tuple[str, float]:
    """`run`, and the wall seconds it took."""
    t = time.perf_counter()
    out = run(*args, timeout=timeout)
    return out, time.perf_counter() - t


def run_json(*args: str | os.PathLike, timeout: float = 900):
    """`run` for a command printing JSON."""
    return json.loads(run(*args, timeout=timeout))


def read_series(path: str | os.PathLike) -> pd.DataFrame:
    """A `timestamp,value` CSV as prognos reads it, timestamps parsed (UTC)."""
    df = pd.read_csv(path)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    return df


def csv_text(text: str) -> pd.DataFrame:
    """CSV printed by prognos (`--output -`) as a frame."""
    return pd.read_csv(io.StringIO(text))


def quick() -> bool:
    """True when the notebooks run as part of the test command
    (PROGNOS_NOTEBOOK_QUICK=1): fewer series or scenarios, same code paths."""
    return os.environ.get("PROGNOS_NOTEBOOK_QUICK") == "1"
