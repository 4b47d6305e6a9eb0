"""evoboard installs one top-level import name, so index packages called envs, agents or suite cannot shadow it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"evoboard": "evoboard", "evoboard.suite": "suite", "evoboard.envs": "envs", "evoboard.agents": "agents"}


def _declared() -> tuple[dict, list[str]]:
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return setup["package-dir"], setup["packages"]


def test_every_module_folder_is_a_declared_package_under_evoboard():
    package_dir, packages = _declared()
    assert package_dir == MAPPED
    found = []
    for name, folder in MAPPED.items():
        for d in sorted([ROOT / folder, *(ROOT / folder).rglob("*")]):
            if d.is_dir() and "__pycache__" not in d.parts and any(d.glob("*.py")):
                rel = d.relative_to(ROOT / folder).parts
                found.append(".".join((name, *rel)))
    assert sorted(packages) == sorted(found)
    assert {p.split(".")[0] for p in packages} == {"evoboard"}


@pytest.mark.slow
def test_the_wheel_holds_one_top_level_import_name(tmp_path):
    """Build the wheel as pip would (from a copy: setuptools writes build/ beside the sources) and read its files."""
    src = tmp_path / "src"
    for folder in MAPPED.values():
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("evoboard-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"evoboard", next(t for t in tops if t.endswith(".dist-info"))}
    assert "evoboard/envs/__init__.py" in names and "evoboard/suite/suites/smoke.toml" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "evoboard = evoboard.suite.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_index_packages_named_envs_agents_and_suite_do_not_shadow_evoboard(tmp_path):
    """Packages of the same names first on the path (as `pip install envs` would leave them) stay theirs."""
    for name in ("envs", "agents", "suite"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"WHO = 'index {name}'\n")
    code = (
        "import envs, agents, suite; assert envs.WHO == 'index envs' and agents.WHO == 'index agents'; "
        "from evoboard.suite.cli import main; raise SystemExit(main(['list', 'encodings']))"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "lowrank-perturb" in out.stdout
