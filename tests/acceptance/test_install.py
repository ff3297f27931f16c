"""The package as users get it: a wheel installed (not editable) into a fresh virtualenv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

import dagctl

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow
NOT_SOURCES = (
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "*.db",
    "tests",
)


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGCTL_DAGS", "DATABASE_URL", "PYTHONPATH")}
    return subprocess.run(argv, capture_output=True, env=env, timeout=300, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]


def build_wheel(tmp: Path) -> Path:
    # Built from a copy of the sources: setuptools leaves build/ behind, and a stale build/
    # in the checkout can slip deleted modules into later wheels.
    source = tmp / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    out = tmp / "dist"
    base = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--quiet", "-w", str(out)]
    # An isolated build fetches setuptools and wheel; without an index, fall back to the
    # build tools of this environment.
    done = run(base)
    if done.returncode != 0:
        done = run([*base, "--no-build-isolation"])
    assert done.returncode == 0, done.stderr.decode()
    (wheel,) = out.glob("dagctl-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """bin/ of a fresh virtualenv with the wheel installed."""
    tmp = tmp_path_factory.mktemp("install")
    wheel = build_wheel(tmp)
    venv = tmp / "venv"
    done = run([sys.executable, "-m", "venv", str(venv)])
    assert done.returncode == 0, done.stderr.decode()
    bin_dir = venv / "bin"
    python = bin_dir / "python"
    # Dependencies come from this test environment, through a path entry: a plain path in a
    # .pth does not run that folder's own .pth files, so the editable dagctl stays out.
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    dependencies = sysconfig.get_paths()["purelib"]
    Path(site.stdout.decode().strip(), "test-dependencies.pth").write_text(dependencies + "\n")
    done = run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)])
    assert done.returncode == 0, done.stderr.decode()
    yield bin_dir


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Path) -> None:
    done = run([str(installed / "python"), "-c", "import dagctl; print(dagctl.__file__)"], cwd="/")
    assert done.returncode == 0, done.stderr.decode()
    location = Path(done.stdout.decode().strip())
    assert installed.parent in location.parents
    assert REPO not in location.parents


def test_version(installed: Path) -> None:
    done = run([str(installed / "dagctl"), "--version"])
    assert done.returncode == 0
    assert done.stdout.decode().strip() == f"dagctl, version {dagctl.__version__}"


def test_help(installed: Path) -> None:
    done = run([str(installed / "dagctl"), "--help"])
    assert done.returncode == 0, done.stderr.decode()
    text = done.stdout.decode()
    assert text.startswith("Usage: dagctl [OPTIONS] COMMAND [ARGS]...")
    for command in ("validate", "schema"):
        assert f"  {command} " in text


def test_validate_the_examples(installed: Path) -> None:
    done = run([str(installed / "dagctl"), "validate", str(REPO / "dags_example")], cwd="/")
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert b"Traceback" not in done.stderr


def test_validate_the_broken_corpus(installed: Path) -> None:
    done = run([str(installed / "dagctl"), "validate", str(REPO / "tests" / "fixtures" / "broken")], cwd="/")
    assert done.returncode == 1
    assert b"broken/cycle/a.sh:3: cycle: a.sh -> b.sh -> c.sh -> a.sh" in done.stdout
    assert b"Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("name", ["workflow", "task", "config"])
def test_schema_prints_the_shipped_bytes(installed: Path, name: str) -> None:
    done = run([str(installed / "dagctl"), "schema", name])
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == (REPO / "schemas" / f"{name}.schema.json").read_bytes()


def test_schemas_folder_is_the_package_folder() -> None:
    assert (REPO / "schemas").resolve() == (REPO / "dagctl" / "dags" / "schemas").resolve()


def test_the_demo_ends_saying_how_to_use_the_installed_command(installed: Path, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO, checkout, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    (checkout / ".venv").symlink_to(installed.parent)  # the demo installs only when it is missing
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DAGCTL_DAGS", "DATABASE_URL", "PYTHONPATH", "VIRTUAL_ENV")
    }
    env["XDG_STATE_HOME"] = str(tmp_path / "state")  # a fresh install: no state database yet
    done = subprocess.run(
        ["bash", "scripts/demo"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.endswith(
        f"dagctl is installed in {checkout}/.venv, which is not on your PATH. To use it:\n"
        f"    source {checkout}/.venv/bin/activate\n"
        f"    dagctl --dags {checkout}/dags_example list\n"
        f"or call it by its path: {checkout}/.venv/bin/dagctl --help\n"
        "Try a whole DAG in the foreground, recording nothing:"
        f" dagctl --dags {checkout}/dags_example run etl\n"
    )
    # What it says works: the command it names, from another folder.
    listed = subprocess.run(
        [f"{checkout}/.venv/bin/dagctl", "--dags", f"{checkout}/dags_example", "list", "-o", "json"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "etl" in listed.stdout


def test_the_wheel_serves_the_dashboard_with_its_own_assets(installed: Path, tmp_path: Path) -> None:
    # Templates, CSS and script ship inside the wheel: no CDN, no front-end build.
    script = f"""
import dagctl.web, pathlib
from dagctl.config import Settings
from dagctl.web.app import create_app
from starlette.testclient import TestClient
assert pathlib.Path(dagctl.web.__file__).parent.parent.parent.name != {REPO.name!r}
settings = Settings.resolve(dags=pathlib.Path({str(REPO / "dags_example")!r}), db="sqlite:///{tmp_path}/s.db")
with TestClient(create_app(settings)) as http:
    for path in ("/", "/static/style.css", "/static/live.js", "/schedulers"):
        answer = http.get(path)
        assert answer.status_code == 200, (path, answer.text)
print("ok")
"""
    bin_dir = str(installed)
    assert run([f"{bin_dir}/dagctl", "--db", f"sqlite:///{tmp_path}/s.db", "db", "upgrade"]).returncode == 0
    done = run([f"{bin_dir}/python", "-W", "error", "-c", script], cwd="/")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "ok"
