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
