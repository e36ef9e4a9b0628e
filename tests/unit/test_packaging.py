"""What a user installs: the distribution name, install hints, and what the wheel carries.

The distribution is ``mooring-agents`` (the name ``mooring`` on PyPI is an unrelated project);
the import name stays ``mooring``. Every install hint mooring prints or documents must use the
distribution name, or a user would install the wrong project.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

import mooring
from mooring.errors import missing_extra

ROOT = Path(__file__).resolve().parents[2]
# "pip install mooring", "pip install 'mooring[redis]'", "pip install \"mooring[all]\"" and the
# like, but not "pip install mooring-agents..."
_OLD_HINT = re.compile(r"""pip install\s+(?:-U\s+|--upgrade\s+)?["']?mooring(?![-\w])""")


def _text_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for folder in ("src", "docs", "examples"):
        base = ROOT / folder
        if base.is_dir():
            files += [p for p in base.rglob("*") if p.suffix in {".py", ".md", ".txt", ".toml", ".sh", ".yml"}]
    return [p for p in files if p.is_file()]


def test_no_install_hint_names_the_unrelated_pypi_project() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _text_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _OLD_HINT.search(line)
    ]
    assert offenders == []


def test_the_missing_driver_hint_installs_the_right_distribution() -> None:
    message = str(missing_extra("redis", "redis"))

    assert "pip install 'mooring-agents[redis]'" in message
    assert not _OLD_HINT.search(message)


def test_the_hint_pattern_catches_the_old_forms() -> None:
    for old in ("pip install mooring", "pip install 'mooring[redis]'", 'pip install "mooring[all]"'):
        assert _OLD_HINT.search(old), old
    assert not _OLD_HINT.search("pip install 'mooring-agents[redis]'")


def test_the_installed_distribution_is_mooring_agents() -> None:
    from importlib.metadata import version

    assert version("mooring-agents") == mooring.__version__


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: hatchling comes from the dev install, so the build needs no network.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        timeout=600,
    )
    (built,) = out.glob("*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_carries_license_types_marker_and_no_dev_tools(wheel: Path) -> None:
    assert wheel.name.startswith(f"mooring_agents-{mooring.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(metadata_name).decode()
    assert "mooring/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "Name: mooring-agents" in metadata
    assert "License-Expression: Apache-2.0" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    # A plain install pulls only the runtime dependencies; test tools sit behind the dev extra.
    plain = [line for line in requires if "extra ==" not in line]
    assert plain and all(tool not in line for line in plain for tool in ("pytest", "mypy", "ruff", "strands"))
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


@pytest.mark.slow
def test_the_wheel_installed_in_a_new_venv_runs_the_seed_snippet(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=600,
    )
    # The runtime dependencies come from this environment (offline); mooring itself from the wheel.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "zz_runtime_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    snippet = textwrap.dedent(
        """
        import mooring
        from mooring import Agent
        from mooring.session import FileSessionManager

        agent = Agent(model="offline", agent_id="assistant", callback_handler=None,
                      session_manager=FileSessionManager(session_id="user-abc-123", storage_dir="./sessions"))
        agent("What's the capital of France?")
        print(mooring.__file__)
        print(len(agent.messages))
        """
    )
    runs = [
        subprocess.run([str(python), "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first_file, first_count = runs[0].stdout.split()
    assert first_file.startswith(site)  # the wheel's copy, not the checkout
    assert (first_count, runs[1].stdout.split()[1]) == ("2", "4")  # the second run continued the first
