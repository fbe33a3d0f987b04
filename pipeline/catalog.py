"""Load and validate catalog.yaml.

Every error names the offending key (``datasets.casme3.root_env``) so a typo in the
catalog is found before any work starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.io import symlink_loop
from pipeline.params import ParamError, resolve
from stages.adapters.layouts import LAYOUTS, MACRO_SHEETS

# the sheet layouts of stages.adapters.layouts, plus the two adapters with their own code
ADAPTERS = (*LAYOUTS, "casme2_sq", "smic_hs")
MODALITIES = ("rgb", "depth", "gray")

# key -> (type, required)
_TOP = {
    "store_root": (str, True),
    "runs_root": (str, True),
    "label_schemes": (dict, True),
    "datasets": (dict, True),
    "clusters": (dict, False),
}
_DS = {
    "description": (str, False),
    "adapter": (str, True),
    "root_env": (str, True),
    "root_default": (str, False),
    "generate": (str, False),
    "fps": ((int, float), True),
    "modalities": (list, True),
    "annotation": (str, False),
    "annotation_sheet": (str, False),
    "frames_dir": (str, True),
    "known_bad": (str, False),
    "label_scheme": (str, True),
    "emotion_synonyms": (dict, False),
    "params": (dict, False),
    "unlabelled": (dict, False),
    "repairs": (list, False),
    "max_duration_s": ((int, float), False),
    "exclude_known_bad": (bool, False),
    "extra_schemes": (list, False),
    "max_failed_fraction": ((int, float), False),
    "allow_links_outside_root": (bool, False),
    "gc_threshold_mb": ((int, float), False),
    # an all-expressions sheet whose macro-expression rows join as source 'macro' (no emotion;
    # pretraining only; stages.adapters.macro), its sheet and the repairs of its rows
    "macro_annotation": (str, False),
    "macro_annotation_sheet": (str, False),
    "macro_repairs": (list, False),
}
_REPAIR = {
    "row": (int, True),
    "column": (str, True),
    "old": ((int, float, str, type(None)), True),
    "new": ((int, float, str), True),
    "source": (str, True),
    "match": (dict, False),
}
_SWAP = {
    "swap": (list, True),
    "columns": (list, False),
    "columns_from": (str, False),
    "labels_agree_with": (str, False),
    "source": (str, True),
}
DEFAULT_MAX_DURATION_S = 5.0  # a labelled clip longer than this cannot be a micro-expression
_UNL = {"frames_dir": (str, True), "openface_dir": (str, False), "pyfeat_models": (str, False)}
# a composite of other catalog datasets (MEGC2019-CD): per part, class -> that part's emotion words
_COMP = {
    "description": (str, False),
    "adapter": (str, True),
    "parts": (dict, True),
    "label_scheme": (str, True),
    "official_list": (str, False),
    "fps": ((int, float), False),
    "modalities": (list, False),
    "params": (dict, False),
    "max_failed_fraction": ((int, float), False),
}
# a run whose failed clip tasks exceed this fraction of those it computed does not become
# `main` (its result stays on the run's scratch branch for inspection; exit status 1)
DEFAULT_MAX_FAILED_FRACTION = 0.5
# after a committed run, collect the objects no version reaches once at least this many MB are
DEFAULT_GC_THRESHOLD_MB = 64.0


class CatalogError(ValueError):
    pass


@dataclass
class Dataset:
    name: str
    adapter: str
    root_env: str
    fps: float
    modalities: list
    annotation: str | None
    frames_dir: str
    label_scheme: str
    scheme: dict
    params: dict
    annotation_sheet: str | None = None
    root_default: str | None = None
    generate: str | None = None
    known_bad: str | None = None
    description: str = ""
    emotion_synonyms: dict = field(default_factory=dict)
    unlabelled: dict | None = None  # frames_dir, openface_dir, pyfeat_models (relative to root)
    parts: dict | None = None  # composite: part dataset -> {class: [emotion words]}
    official_list: Path | None = None  # composite: the challenge's list of clips (it defines the set)
    repairs: list = field(default_factory=list)  # sheet repairs (stages.adapters.repairs), with sources
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    exclude_known_bad: bool = False  # known-bad list: note the samples (False) or exclude them
    extra_schemes: list = field(default_factory=list)  # other label schemes to count classes under
    schemes: dict = field(default_factory=dict)  # name -> scheme, label_scheme first
    max_failed_fraction: float = DEFAULT_MAX_FAILED_FRACTION
    # frames, clip folders and the annotation may be symlinks leaving the root (refused unless true)
    allow_links_outside_root: bool = False
    gc_threshold_mb: float = DEFAULT_GC_THRESHOLD_MB
    macro_annotation: str | None = None  # all-expressions sheet: its macro rows as source 'macro'
    macro_annotation_sheet: str | None = None
    macro_repairs: list = field(default_factory=list)  # repairs of that sheet's rows (as `repairs`)
    composite_root: Path | None = None
    base_dir: Path = Path(".")

    def root(self, must_exist: bool = True) -> Path:
        """The dataset root: $root_env, else root_default (relative to the catalog). A
        composite's root is a folder of links to its parts' roots."""
        if self.composite_root is not None:
            return self.composite_root
        val = os.environ.get(self.root_env)
        key = f"datasets.{self.name}.root_env"
        if not val:
            if self.root_default is None:
                raise CatalogError(
                    f"dataset {self.name!r}: environment variable {self.root_env} is not set "
                    f"({key}); set it to the folder that holds the dataset"
                )
            p = (self.base_dir / self.root_default).resolve()
        else:
            p = Path(val).expanduser()
        if symlink_loop(p):
            raise CatalogError(f"dataset {self.name!r}: root {p} ({key}={self.root_env}) is a symlink loop")
        try:
            p = p.resolve(strict=False)
        except (RuntimeError, OSError) as e:  # a symlink loop (Python < 3.13 raises RuntimeError)
            raise CatalogError(f"dataset {self.name!r}: root {p} ({key}) cannot be resolved: {e}") from e
        if must_exist and not p.is_dir():
            raise CatalogError(f"dataset {self.name!r}: root {p} ({key}={self.root_env}) is not a directory")
        return p

    def file(self, key: str) -> Path:
        """A file named by catalog key `key` (relative to the root); missing is an error."""
        rel = getattr(self, key)
        if not rel:
            raise CatalogError(f"datasets.{self.name}.{key}: not set")
        p = self.root() / rel
        root = self.root()
        if symlink_loop(p):
            raise CatalogError(f"datasets.{self.name}.{key}: {p} is a symlink loop")
        if not p.resolve().is_relative_to(root.resolve()) and not self.allow_links_outside_root:
            raise CatalogError(
                f"datasets.{self.name}.{key}: {rel} leaves the dataset root {root} (to {p.resolve()}); "
                "set allow_links_outside_root: true to use it"
            )
        if not p.is_file():
            raise CatalogError(f"datasets.{self.name}.{key}: file {p} not found")
        return p

    @property
    def has_depth(self) -> bool:
        return "depth" in self.modalities


@dataclass
class Catalog:
    path: Path
    store_root: Path
    runs_root: Path
    label_schemes: dict
    datasets: dict[str, Dataset]
    clusters: dict = field(default_factory=dict)

    def cluster(self, name: str) -> dict:
        if name not in self.clusters:
            raise CatalogError(f"unknown cluster profile {name!r}; the catalog has {sorted(self.clusters)}")
        return self.clusters[name]

    def dataset(self, name: str) -> Dataset:
        if name not in self.datasets:
            raise CatalogError(f"unknown dataset {name!r}; the catalog {self.path} has {sorted(self.datasets)}")
        return self.datasets[name]


def _data_file(base: Path, rel: str, key: str) -> Path:
    """A reference file named in the catalog: relative to the catalog's folder, else one
    the project ships (stages/data/, e.g. the MEGC2019 official list)."""
    from importlib import resources

    for p in (base / rel, Path(str(resources.files("stages").joinpath("data", rel)))):
        if p.is_file():
            return p.resolve()
    raise CatalogError(f"{key}: file {rel!r} not found beside the catalog ({base}) nor in the project's stages/data/")


def _check(d: dict, spec: dict, where: str) -> None:
    if not isinstance(d, dict):
        raise CatalogError(f"{where}: expected a mapping, got {type(d).__name__}")
    for k in d:
        if k not in spec:
            raise CatalogError(f"{where}.{k}: unknown key; allowed: {sorted(spec)}")
    for k, (typ, req) in spec.items():
        if k not in d:
            if req:
                raise CatalogError(f"{where}.{k}: required key missing")
            continue
        if not isinstance(d[k], typ) or (isinstance(d[k], bool) and typ is not bool):
            tn = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
            raise CatalogError(f"{where}.{k}: expected {tn}, got {d[k]!r}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the
    last one silently: a second `params:` would replace the first)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise CatalogError(
                    f"catalog {self.name}: key {key!r} is given twice in one mapping (lines {seen[key]} and {line})"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict:
    """The catalog file's mapping, without the `x-...` keys (YAML anchors only)."""
    if not path.is_file():
        raise CatalogError(f"catalog {path} not found")
    try:
        loader = _UniqueKeyLoader(path.read_text())
        loader.name = str(path)
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise CatalogError(f"catalog {path}: not valid YAML: {e}") from e
    if isinstance(raw, dict):  # x-... keys hold YAML anchors only (shared repair lists, sources)
        raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    return raw


def _class_mapping(value, where: str) -> None:
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        raise CatalogError(f"{where}: expected class -> list of emotion words")
    for cls, words in value.items():
        bad = [w for w in words if not isinstance(w, str)]
        if bad:
            raise CatalogError(f"{where}.{cls}: {bad!r} not words (quote them: a YAML 'no' or 1 is not text)")


def _params(d: dict, where: str) -> dict:
    """The dataset's `params` with defaults filled in, checked."""
    try:
        return resolve(d.get("params"), f"{where}.params")
    except ParamError as e:
        raise CatalogError(str(e)) from e


def _failed_fraction(d: dict, where: str) -> float:
    """The dataset's failure threshold, checked: a fraction in (0, 1]."""
    v = d.get("max_failed_fraction", DEFAULT_MAX_FAILED_FRACTION)
    if not (0 < v <= 1):
        raise CatalogError(f"{where}.max_failed_fraction: expected a fraction in (0, 1], got {v!r}")
    return float(v)


def _scheme_of(d: dict, schemes: dict, where: str) -> dict:
    if d["label_scheme"] not in schemes:
        raise CatalogError(f"{where}.label_scheme: {d['label_scheme']!r} is not in label_schemes")
    return schemes[d["label_scheme"]]


def _composite(name: str, d: dict, raw: dict, base: Path) -> Dataset:
    """A dataset made of parts of others (e.g. MEGC2019's composite)."""
    where = f"datasets.{name}"
    _check(d, _COMP, where)
    for part, mapping in d["parts"].items():
        if part not in raw["datasets"]:
            raise CatalogError(f"{where}.parts.{part}: no such dataset in the catalog")
        _class_mapping(mapping, f"{where}.parts.{part}")
    scheme = _scheme_of(d, raw["label_schemes"], where)
    params = _params(d, where)
    official = _data_file(base, d["official_list"], f"{where}.official_list") if d.get("official_list") else None
    return Dataset(
        name=name,
        adapter="composite",
        root_env="",
        fps=float(d.get("fps", 0)),
        modalities=list(d.get("modalities", ["rgb"])),
        annotation=None,
        frames_dir="",
        label_scheme=d["label_scheme"],
        scheme=scheme,
        params=params,
        description=d.get("description", ""),
        parts=d["parts"],
        official_list=official,
        schemes={d["label_scheme"]: scheme},
        composite_root=(base / raw["store_root"]).parent / "composites" / name,
        base_dir=base,
        max_failed_fraction=_failed_fraction(d, where),
    )


def _check_repairs(d: dict, where: str, key: str = "repairs") -> None:
    """Each sheet repair of `key` is well formed and names its source."""
    for i, rep in enumerate(d.get(key) or []):
        _check(rep, _SWAP if isinstance(rep, dict) and "swap" in rep else _REPAIR, f"{where}.{key}[{i}]")
        if "swap" in rep and (len(rep["swap"]) != 2 or not all(isinstance(r, int) for r in rep["swap"])):
            raise CatalogError(f"{where}.{key}[{i}].swap: expected two sheet row numbers, got {rep['swap']!r}")
        if "swap" in rep and bool(rep.get("columns")) == bool(rep.get("columns_from")):
            raise CatalogError(f"{where}.{key}[{i}]: a swap names either columns or columns_from")
        if not str(rep["source"]).strip():
            raise CatalogError(f"{where}.{key}[{i}].source: say where the repair comes from")
    if d["adapter"] in ("smic_hs", "casme2_sq") and d.get("repairs"):
        raise CatalogError(f"{where}.repairs: adapter {d['adapter']} has no sheet rows to repair")


def _check_macro(d: dict, where: str) -> None:
    """`macro_annotation` only where the adapter knows an all-expressions sheet; its sheet
    and repairs only with it."""
    if "macro_annotation" not in d:
        extra = [k for k in ("macro_annotation_sheet", "macro_repairs") if k in d]
        if extra:
            raise CatalogError(f"{where}.{extra[0]}: given without macro_annotation (the sheet it is about)")
        return
    if d["adapter"] not in MACRO_SHEETS:
        raise CatalogError(
            f"{where}.macro_annotation: adapter {d['adapter']} has no all-expressions sheet layout "
            f"(stages/adapters/layouts.py MACRO_SHEETS: {sorted(MACRO_SHEETS)})"
        )
    _check_repairs(d, where, "macro_repairs")


def _check_dataset(d: dict, schemes: dict, where: str) -> None:
    """Keys, adapter, modalities, generator, unlabelled part, repairs, limits."""
    _check(d, _DS, where)
    if d["adapter"] not in ADAPTERS:
        raise CatalogError(f"{where}.adapter: unknown adapter {d['adapter']!r}; known: {ADAPTERS}")
    bad = [m for m in d["modalities"] if m not in MODALITIES]
    if bad:
        raise CatalogError(f"{where}.modalities: unknown {bad}; known: {MODALITIES}")
    _scheme_of(d, schemes, where)
    if not (d["fps"] > 0 and d["fps"] < float("inf")):
        raise CatalogError(f"{where}.fps: expected a positive, finite frame rate, got {d['fps']!r}")
    if d.get("generate") not in (None, "demo"):
        raise CatalogError(f"{where}.generate: only 'demo' can be generated")
    if "unlabelled" in d:
        _check(d["unlabelled"], _UNL, f"{where}.unlabelled")
    _check_repairs(d, where)
    _check_macro(d, where)
    limit = d.get("max_duration_s", DEFAULT_MAX_DURATION_S)
    if not (limit > 0 and limit < float("inf")):
        raise CatalogError(f"{where}.max_duration_s: expected a positive number of seconds, got {limit!r}")
    if not d.get("gc_threshold_mb", DEFAULT_GC_THRESHOLD_MB) >= 0:
        raise CatalogError(f"{where}.gc_threshold_mb: expected a size >= 0 (MB), got {d['gc_threshold_mb']!r}")
    bad = [x for x in d.get("extra_schemes") or [] if x not in schemes]
    if bad:
        raise CatalogError(f"{where}.extra_schemes: {bad} not in label_schemes")


def _dataset(name: str, d: dict, schemes: dict, base: Path) -> Dataset:
    """One dataset entry of the catalog, checked."""
    where = f"datasets.{name}"
    _check_dataset(d, schemes, where)
    extra = list(d.get("extra_schemes") or [])
    return Dataset(
        name=name,
        adapter=d["adapter"],
        root_env=d["root_env"],
        fps=float(d["fps"]),
        modalities=list(d["modalities"]),
        annotation=d.get("annotation"),
        frames_dir=d["frames_dir"],
        label_scheme=d["label_scheme"],
        scheme=schemes[d["label_scheme"]],
        params=_params(d, where),
        annotation_sheet=d.get("annotation_sheet"),
        root_default=d.get("root_default"),
        generate=d.get("generate"),
        known_bad=d.get("known_bad"),
        description=d.get("description", ""),
        emotion_synonyms=d.get("emotion_synonyms") or {},
        unlabelled=d.get("unlabelled"),
        base_dir=base,
        repairs=list(d.get("repairs") or []),
        max_duration_s=float(d.get("max_duration_s", DEFAULT_MAX_DURATION_S)),
        exclude_known_bad=bool(d.get("exclude_known_bad", False)),
        extra_schemes=extra,
        schemes={k: schemes[k] for k in dict.fromkeys([d["label_scheme"], *extra])},
        max_failed_fraction=_failed_fraction(d, where),
        allow_links_outside_root=bool(d.get("allow_links_outside_root", False)),
        gc_threshold_mb=float(d.get("gc_threshold_mb", DEFAULT_GC_THRESHOLD_MB)),
        macro_annotation=d.get("macro_annotation"),
        macro_annotation_sheet=d.get("macro_annotation_sheet"),
        macro_repairs=list(d.get("macro_repairs") or []),
    )


def _clusters(raw: dict) -> dict:
    """The catalog's cluster profiles, checked."""
    from pipeline.cluster import KINDS, PROFILE_KEYS

    clusters = {}
    for name, prof in (raw.get("clusters") or {}).items():
        _check(prof, PROFILE_KEYS, f"clusters.{name}")
        if prof["kind"] not in KINDS:
            raise CatalogError(f"clusters.{name}.kind: {prof['kind']!r} is not one of {KINDS}")
        clusters[name] = {**prof, "name": name}
    return clusters


def load_catalog(path: str | os.PathLike = "catalog.yaml") -> Catalog:
    """Read and check the catalog; every error names the key (CatalogError)."""
    path = Path(path)
    raw = _read_yaml(path)
    _check(raw, _TOP, "catalog")
    base = path.resolve().parent
    schemes = raw["label_schemes"]
    for sname, scheme in schemes.items():
        _class_mapping(scheme, f"label_schemes.{sname}")
    datasets = {
        name: _composite(name, d, raw, base)
        if isinstance(d, dict) and d.get("adapter") == "composite"
        else _dataset(name, d, schemes, base)
        for name, d in raw["datasets"].items()
    }
    return Catalog(
        path=path,
        store_root=(base / raw["store_root"]),
        runs_root=(base / raw["runs_root"]),
        label_schemes=schemes,
        datasets=datasets,
        clusters=_clusters(raw),
    )
