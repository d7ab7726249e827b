"""Image size estimate: the runtime venv the Dockerfile's build stage makes, measured here.

No Docker engine runs on the build machines, so the image cannot be built and weighed. This
script does what the build stage does - the project's wheel plus binary wheels of its runtime
dependencies pinned by constraints.txt, installed into a pip-less venv, then trimmed (test
suites, ``__pycache__``, type stubs, Cython sources, debug symbols) - and reports the venv's
size, its largest packages, and the estimate ``base image + venv + tini`` against the 250 MB
target (docs/deployment.md). The base image's size is an input (``--base-mb``: 125 MB is
``python:3.11-slim-bookworm`` uncompressed, as Docker Hub lists it).

    .venv/bin/python bench/image_size.py            # about a minute; uses pip's cache/index
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip"]
TARGET_MB = 250.0
TINI_MB = 0.8


def du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def trim(venv: Path) -> None:
    """The Dockerfile's trimming, step for step."""
    for d in sorted(venv.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if d.is_dir() and d.name in ("tests", "__pycache__"):
            shutil.rmtree(d, ignore_errors=True)
    for f in venv.rglob("*"):
        if f.is_file() and f.suffix in (".pyi", ".pxd", ".pyx"):
            f.unlink()
    sos = [str(f) for f in venv.rglob("*.so") if ".libs/" not in str(f)]
    if sos and shutil.which("strip"):
        subprocess.run(["strip", "--strip-debug", *sos], check=False, capture_output=True)


def packages(venv: Path) -> list[tuple[str, int]]:
    (site,) = venv.glob("lib/python3*/site-packages")
    sizes: dict[str, int] = {}
    for entry in site.iterdir():
        name = entry.name.split("-")[0].removesuffix(".libs").lower()
        size = du(entry) if entry.is_dir() else entry.stat().st_size
        sizes[name] = sizes.get(name, 0) + size
    return sorted(sizes.items(), key=lambda kv: -kv[1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--base-mb", type=float, default=125.0, help="base image size (125 MB)")
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="image-size-") as tmp:
        t = Path(tmp)
        src = t / "src"
        src.mkdir()
        for name in ("constraints.txt", "pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, src / name)
        for name in ("engine", "schemas", "yahoo_emulator"):
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        wheels = t / "wheels"
        subprocess.run(
            [*PIP, "wheel", "-q", "--wheel-dir", str(wheels), "--only-binary=:all:",
             "--constraint", str(src / "constraints.txt"), str(src)],
            check=True,
        )  # fmt: skip
        venv = t / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        subprocess.run(
            [*PIP, "--python", str(venv / "bin" / "python"), "install", "-q", "--no-index",
             "--find-links", str(wheels), "--no-compile", "--constraint",
             str(src / "constraints.txt"), "ingestion-agent"],
            check=True,
        )  # fmt: skip
        trim(venv)
        subprocess.run([str(venv / "bin" / "ingestion-agent"), "--version"], check=True)
        size_mb = du(venv) / 1e6
        top = packages(venv)
    estimate = a.base_mb + size_mb + TINI_MB
    print(f"runtime venv (trimmed, as the build stage): {size_mb:.1f} MB")
    print("largest packages: " + ", ".join(f"{n} {s / 1e6:.1f}" for n, s in top[: a.top]))
    print(
        f"image estimate: base {a.base_mb:.0f} + venv {size_mb:.1f} + tini {TINI_MB} = "
        f"{estimate:.0f} MB (target {TARGET_MB:.0f} MB: "
        f"{'within' if estimate <= TARGET_MB else 'OVER'})"
    )


if __name__ == "__main__":
    main()
