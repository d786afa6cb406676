"""shiprisk: loss and rejection risk, channel and insurance advice for cross-border parcels.

The stages live in the repository's top-level folders (``data/``, ``features/``, ``models/``,
``decisions/``, ``training/``, ``serving/``); the build maps each to ``shiprisk.<stage>``.
A source tree that was not installed (a bento's ``src/``, a bare checkout on ``sys.path``)
has no such mapping, so there the package also looks for its stages beside this folder.
"""

from pathlib import Path as _Path

_SOURCE_ROOT = _Path(__file__).resolve().parent.parent
if (_SOURCE_ROOT / "serving" / "service.py").is_file() and (_SOURCE_ROOT / "data").is_dir():
    __path__.append(str(_SOURCE_ROOT))


def package_version() -> str:
    """The version in ``pyproject.toml``: from the installed metadata, else (a bento's
    ``src/``, which is not installed) from the ``pyproject.toml`` packaged beside it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shiprisk")
    except PackageNotFoundError:
        import tomllib

        pyproject = _SOURCE_ROOT / "pyproject.toml"
        if pyproject.is_file():
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        return "unknown"
