"""`python -m neurosim`: `--help`, and `gallery` writing one PNG per behaviour and per
circuit model (a subset here; the whole gallery, about a minute, is marked slow)."""

import os
import subprocess
import sys

import pytest

import neurosim as ns
from neurosim._gallery import CIRCUITS, run_gallery

PNG = b"\x89PNG\r\n\x1a\n"


def _run(*args, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    env.setdefault("JAX_PLATFORMS", "cpu")
    return subprocess.run(
        [sys.executable, "-m", "neurosim", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _assert_pngs(folder, names):
    files = sorted(os.listdir(folder))
    assert files == sorted(names)
    for name in files:
        path = folder / name
        assert path.stat().st_size > 10_000, name
        assert path.read_bytes()[:8] == PNG


def _file_name(name):
    return f"phase_{name}.png" if name in CIRCUITS else f"izhikevich_{name}.png"


def test_help_lists_the_commands():
    result = _run("--help", timeout=120)
    assert result.returncode == 0
    for command in ("demo", "gallery"):
        assert command in result.stdout
    result = _run("gallery", "--help", timeout=120)
    assert result.returncode == 0
    for option in ("--out", "--only", "--quiet"):
        assert option in result.stdout


def test_gallery_rejects_an_unknown_name(tmp_path):
    result = _run("gallery", "--only", "tonic_spikes", "--out", str(tmp_path), timeout=120)
    assert result.returncode == 2
    assert "tonic_spikes" in result.stderr and "tonic_spiking" in result.stderr
    assert os.listdir(tmp_path) == []


def test_gallery_writes_one_png_per_name_quietly(tmp_path):
    names = ("tonic_spiking", "class_1_exc", "fhn")
    result = _run("gallery", "--quiet", "--out", str(tmp_path / "g"), "--only", *names)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[1/" not in result.stderr
    _assert_pngs(tmp_path / "g", [_file_name(n) for n in names])


def test_gallery_reports_progress_on_stderr(tmp_path, capsys):
    written = run_gallery(out_dir=str(tmp_path), only=["phasic_spiking"])
    err = capsys.readouterr().err
    assert written == [str(tmp_path / "izhikevich_phasic_spiking.png")]
    assert "[1/1]" in err and "izhikevich_phasic_spiking.png" in err


@pytest.mark.slow
def test_whole_gallery(tmp_path):
    result = _run("gallery", "--quiet", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    names = ns.IZHIKEVICH_BEHAVIOURS + CIRCUITS
    assert len(names) == 23
    _assert_pngs(tmp_path, [_file_name(n) for n in names])
