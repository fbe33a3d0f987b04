"""Model files from other labs are hostile until checked.

Two checks, both before anything is loaded:

- `check_skops_types`: a `.skops` file (py-feat's AU classifier) names the Python types it
  rebuilds; loading it trusting every named type lets a crafted file run code
  (`os.system`). Only the types the published classifier needs are allowed
  (`SKOPS_TYPES`); anything else is refused, naming the type and the file.
- `check_pinned`: a file listed in `models.lock` (pipeline/data/models.lock: sha256, name,
  source of the hash) must have exactly those bytes; a mismatch is refused unless the
  user passes `--trust-model-files` (then it is said in the log).

Torch weights (magnifier, MobileFaceNet, ImageNet backbones) are read with
`torch.load(..., weights_only=True)` everywhere (tests/test_model_trust.py checks the
code base), so they cannot run code; safetensors cannot either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.io import sha256_file

LOCK = Path(__file__).parent / "data" / "models.lock"

# The types py-feat 2.1.5's xgb AU classifier file names beyond skops' defaults (scikit-
# learn's StandardScaler/PCA and numpy are trusted by skops itself): py-feat's wrapper
# and xgboost's classifier and booster. Read from a file py-feat's own code dumps
# (tests/pyfeat_standins.py) with skops.io.get_untrusted_types.
SKOPS_TYPES = frozenset(
    {
        "feat.au_detectors.StatLearning.SL_test.XGBClassifier",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.core.Booster",
    }
)


class UntrustedModelFile(RuntimeError):
    """A model file that could run code or is not the file it claims to be."""


@dataclass(frozen=True)
class Pin:
    name: str
    sha256: str
    source: str


def read_lock(path: Path = LOCK) -> dict[str, Pin]:
    """name -> Pin of a models.lock file (comment lines start with '#')."""
    pins = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sha, name, *source = line.split(maxsplit=2)
        pins[name] = Pin(name, sha.lower(), source[0] if source else "")
    return pins


def check_pinned(path: Path, name: str, trust: bool = False, log=print, lock: Path = LOCK) -> str:
    """'pinned' (bytes match models.lock), 'not pinned' (name not listed) or 'trusted'
    (a mismatch the user accepted with trust=True). A mismatch without trust raises."""
    pin = read_lock(lock).get(name)
    if pin is None:
        return "not pinned"
    got = sha256_file(path)
    if got == pin.sha256:
        return "pinned"
    msg = f"model file {path} ({name}) has sha256 {got}, but models.lock pins {pin.sha256} ({pin.source})"
    if not trust:
        raise UntrustedModelFile(f"{msg}; refused. If you made or checked this file yourself, pass --trust-model-files")
    log(f"warning: {msg}; used because --trust-model-files was given")
    return "trusted"


def check_skops_types(path: Path) -> list[str]:
    """The non-default types a .skops file names, refused (UntrustedModelFile naming each
    and the file) unless all are in SKOPS_TYPES. Reads the file's schema only: nothing
    is constructed."""
    from skops.io import get_untrusted_types

    try:
        named = get_untrusted_types(file=path)
    except Exception as e:
        raise UntrustedModelFile(f"{path}: not a readable .skops file ({type(e).__name__}: {e})") from e
    extra = sorted(set(named) - SKOPS_TYPES)
    if extra:
        raise UntrustedModelFile(
            f"{path}: names type(s) {extra} that py-feat's AU classifier does not need; refused "
            f"(loading would let the file run code). Allowed: {sorted(SKOPS_TYPES)}"
        )
    return sorted(named)
