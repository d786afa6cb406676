"""``make bento``: package the MLflow champion and the service as a bento, in one command.

A bare ``bentoml build`` needs ``BENTOML_HOME`` pointing at this project's store and packages
whichever model tag was last pinned by ``shiprisk serve`` (possibly a rolled-back one). This
resolves the champion exactly as ``shiprisk serve`` does (verified import, or the verified
import of the version last read as champion), bakes its tag into the bento
(``serving/bento_model_tag``, read by :func:`~shiprisk.serving.model_store.pinned_tag`, present
only while building) and runs ``bentoml build`` against the project's store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shiprisk import _SOURCE_ROOT
from shiprisk.serving.model_store import BAKED_TAG_FILE, NoVerifiedModelError, resolve
from shiprisk.settings import CHAMPION, get_settings

BENTOFILE = _SOURCE_ROOT / "bentofile.yaml"


class BentoBuildError(RuntimeError):
    """The bento could not be built; the message is one actionable line."""


def build(alias: str = CHAMPION) -> tuple[str, str]:
    """Build the bento for ``alias``'s model; return (bento tag, model tag)."""
    if not BENTOFILE.is_file():
        raise BentoBuildError("no bentofile.yaml beside the package: run it from a checkout")
    store = get_settings().bentoml_home.resolve()
    os.environ["BENTOML_HOME"] = str(store)
    try:
        resolved = resolve(alias)
    except NoVerifiedModelError as exc:
        raise BentoBuildError(f"{exc}; run `make run` (or `shiprisk train`) first") from exc
    BAKED_TAG_FILE.write_text(resolved.tag + "\n")
    try:
        env = dict(os.environ, SHIPRISK_MODEL_TAG=resolved.tag, BENTOML_DO_NOT_TRACK="true")
        bentoml = str(Path(sys.executable).with_name("bentoml"))
        done = subprocess.run(
            [bentoml, "build", str(_SOURCE_ROOT), "--output", "tag"],
            env=env,
            cwd=_SOURCE_ROOT,
            capture_output=True,
            text=True,
        )
    finally:
        BAKED_TAG_FILE.unlink(missing_ok=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BentoBuildError(f"bentoml build failed: {last}")
    tag = done.stdout.strip().splitlines()[-1].split("__tag__:")[-1].strip()
    return tag, resolved.tag


def main() -> None:
    """``python -m shiprisk.serving.bento``: build, then say how to serve and containerize."""
    try:
        tag, model = build()
    except BentoBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    # Absolute: BentoML serves a bento from inside its src/, where a relative store is lost.
    store = os.environ["BENTOML_HOME"]
    cwd = os.getcwd()
    home = "$PWD/" + os.path.relpath(store, cwd) if store.startswith(cwd + os.sep) else store
    print(f"built bento {tag} with model {model} (store: {home})")
    print(f"serve it:         BENTOML_HOME={home} uv run bentoml serve {tag} --port 3000")
    print(f"container image:  BENTOML_HOME={home} uv run bentoml containerize {tag}")


if __name__ == "__main__":
    main()
