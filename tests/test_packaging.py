"""``pip install .`` (not editable) gives a whole service: every file the package reads at run
time (Lua scripts, the console) is in the wheel, with the licence and the console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "src" / "streamlimit"


@pytest.mark.slow  # builds the wheel (a few seconds)
def test_the_wheel_holds_every_package_file_and_the_licence(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: a build leaves build/ and *.egg-info where it runs
    shutil.copytree(PACKAGE, source / "src" / "streamlimit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels)]
    subprocess.run([*pip_wheel, str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("streamlimit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    on_disk = {
        f"streamlimit/{p.relative_to(PACKAGE).as_posix()}"
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert on_disk - names == set()
    assert f"{info}/licenses/LICENSE" in names
    assert "streamlimit = streamlimit.cli:main" in entry_points
