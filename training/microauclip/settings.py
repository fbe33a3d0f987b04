"""MicroAUCLIP's per-dataset settings (seed 004): the AU set and the weights alpha
(L_MiAUC) and beta (L_GD) of eq. 12 that the paper uses on the dataset being trained on.

They are data (training/data/microauclip.json, "per_dataset", keyed by the catalog
dataset's adapter, with the paper's section and tables as source); a dataset the paper
does not use gets "default", and the log says so. `--aus`, `--alpha` and `--beta`
override them. Imports no torch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

SPEC = "training/data/microauclip.json"


def spec() -> dict:
    """The method's data: AU regions, prompts, AU-emotion table, per-dataset settings."""
    return json.loads(resources.files("training").joinpath("data/microauclip.json").read_text())


@dataclass(frozen=True)
class Settings:
    """aus: the AU numbers detected; alpha, beta: eq. 12's weights of L_MiAUC and L_GD;
    source: {"aus" | "alpha" | "beta": where the value came from}."""

    aus: list[int]
    alpha: float
    beta: float
    source: dict

    def describe(self) -> str:
        """For the log: each value with its source (one source, named once)."""
        values = {"aus": f"AUs {self.aus}", "alpha": f"alpha {self.alpha}", "beta": f"beta {self.beta}"}
        if len(set(self.source.values())) == 1:
            return f"{', '.join(values.values())} ({self.source['aus']})"
        return "; ".join(f"{v} ({self.source[k]})" for k, v in values.items())


def parse_aus(value: str, sp: dict) -> list[int]:
    """`--aus`: a named set (a dataset adapter of "per_dataset", or "default") or AU
    numbers separated by commas ("2,4,7,12"); each must have a region and prompts."""
    named = {**{k: v["aus"] for k, v in sp["per_dataset"].items() if k != "source"}, "default": sp["default"]["aus"]}
    if value in named:
        return list(named[value])
    try:
        aus = [int(a) for a in value.replace(" ", "").split(",") if a]
    except ValueError:
        raise ValueError(
            f"--aus {value!r}: neither a named set ({', '.join(named)}) nor AU numbers such as 2,4,7,12"
        ) from None
    unknown = [a for a in aus if str(a) not in sp["regions"] or str(a) not in sp["prompts"]]
    if not aus or unknown or len(set(aus)) != len(aus):
        raise ValueError(
            f"--aus {value!r}: give distinct AUs of {SPEC}'s regions and prompts "
            f"({', '.join(sp['regions'])}){f'; unknown: {unknown}' if unknown else ''}"
        )
    return aus


def parse_weight(name: str, value) -> float:
    """`--alpha` / `--beta`: a number >= 0."""
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"--{name} {value!r}: not a number") from None
    if not w >= 0:
        raise ValueError(f"--{name} {value!r}: a loss weight must be >= 0")
    return w


def dataset_settings(adapter: str | None, aus=None, alpha=None, beta=None, sp: dict | None = None):
    """(Settings, note): the paper's settings for a dataset read by `adapter`, each value
    replaced by its override when one is given (aus: parse_aus; alpha, beta: numbers);
    note: a line for the log when a value fell back to the default (else None)."""
    sp = sp or spec()
    table = sp["per_dataset"]
    paper = table.get(adapter) if adapter != "source" else None
    base = paper or sp["default"]
    given = {"aus": aus, "alpha": alpha, "beta": beta}
    source, values, defaulted = {}, {}, []
    for key, over in given.items():
        if over is not None and over != "":
            values[key] = parse_aus(str(over), sp) if key == "aus" else parse_weight(key, over)
            source[key] = f"--{key} option"
            continue
        values[key] = list(base["aus"]) if key == "aus" else float(base[key])
        if paper:
            source[key] = f"{table['source'][key]}, for dataset adapter {adapter}"
        else:
            source[key] = f"default: the paper has none for dataset adapter {adapter}"
            defaulted.append(key)
    note = None
    if defaulted:
        papers = ", ".join(k for k in table if k != "source")
        note = (
            f"MicroAUCLIP: the paper gives no AU set or loss weights for dataset adapter {adapter!r} (only for "
            f"{papers}); using the default {', '.join(defaulted)} ({sp['default']['source']})"
        )
    return Settings(values["aus"], values["alpha"], values["beta"], source), note
