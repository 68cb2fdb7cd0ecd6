"""The wheel, as a user installs it: built with ``pip wheel .``, installed with its declared
dependencies into a fresh venv, it holds only the project's own packages (no ``bench``, no
``tests``, nothing named ``systemd``, which is python-systemd's import name), and every module it
ships imports there, so every import is a declared dependency.

It reaches the package index for the dependencies (pip's cache usually has them): a network test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = {"gateway", "drivers", "vision", "anomaly", "edge_config", "edge_core", "simulators"}

_IMPORT_ALL = """
import importlib, pkgutil, sys
names = sys.argv[1:]
failed = []
for top in names:
    pkg = importlib.import_module(top)
    for info in pkgutil.walk_packages(pkg.__path__, top + "."):
        if info.name.endswith(".__main__"):  # running it is the CLI, not an import check
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
raise SystemExit(1 if failed else 0)
"""


def _run(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False, timeout=900)


@pytest.mark.network
def test_the_wheel_ships_only_our_packages_and_each_imports_in_a_fresh_venv(tmp_path: Path) -> None:
    # Built from a copy of what git would commit: a build/ folder left in the checkout by an
    # earlier build could slip stale modules into the wheel.
    src = tmp_path / "src"
    files = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", ".", cwd=src)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("township_edge_gateway-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        tops = {n.split("/")[0] for n in zf.namelist() if not n.split("/")[0].endswith(".dist-info")}
    assert tops == SHIPPED

    # A venv without pip of its own (this venv's pip installs into it: --python), and no
    # byte-compiling of every installed file: those two were most of this test's time. The import
    # check below compiles what it imports.
    venv = tmp_path / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv)
    assert made.returncode == 0, made.stderr
    py = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-compile", "--disable-pip-version-check")
    installed = _run(*pip, wheel)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # Run from an empty folder, so nothing of the checkout is on the path.
    (tmp_path / "empty").mkdir()
    imported = _run(py, "-c", _IMPORT_ALL, *sorted(SHIPPED), cwd=tmp_path / "empty")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    cli = _run(venv / "bin" / "edge-gateway", "config", "schema", cwd=tmp_path / "empty")
    assert cli.returncode == 0 and '"properties"' in cli.stdout, cli.stderr
