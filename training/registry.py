"""The registry of methods: one package per method under training/ declares `METHOD`
(training.method.Method); adding one is its package plus a line below. The CLI builds
`mepipe train`'s options from it and calls `train`. Importing it imports no torch."""

from __future__ import annotations

from pathlib import Path

from training import attrcl, dvscl, fdp, microauclip, selfme
from training.method import Method, Option

REGISTRY: dict[str, Method] = {
    m.name: m for m in (dvscl.METHOD, selfme.METHOD, attrcl.METHOD, fdp.METHOD, microauclip.METHOD)
}


class UnknownMethod(KeyError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name, self.known = name, sorted(REGISTRY)

    def __str__(self) -> str:
        return f"method {self.name!r}: unknown; known: {', '.join(self.known)}"


def get_method(name: str) -> Method:
    if name not in REGISTRY:
        raise UnknownMethod(name)
    return REGISTRY[name]


def config_names() -> list[str]:
    """Every method's config names, in declaration order ('tiny', 'paper')."""
    return list(dict.fromkeys(c for m in REGISTRY.values() for c in m.configs))


def cli_options() -> list[tuple[Option, str]]:
    """The methods' options, each once, with a help naming which method takes it for
    what. Methods that share an option name share its default and choices."""
    out: dict[str, tuple[Option, list[str]]] = {}
    for m in REGISTRY.values():
        for o in m.options:
            if o.name in out:
                first = out[o.name][0]
                if (first.default, first.choices) != (o.default, o.choices):
                    raise ValueError(f"option {o.flag}: methods declare it with different defaults or choices")
                out[o.name][1].append(f"{m.name}: {o.help}")
            else:
                out[o.name] = (o, [f"{m.name}: {o.help}"])
    return [(o, "; ".join(helps)) for o, helps in out.values()]


def train(
    method: str,
    store,
    scheme: dict,
    out: Path,
    config: str = "tiny",
    options: dict | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    log=print,
    device: str | None = None,
    precision: str | None = None,
    adapter: str | None = None,
) -> dict:
    """Train `method` on the store (a path, or s3://...@tag) under its `config`, with its
    method-specific `options` (the rest at their defaults), reading the feed through the
    local cache `cache_dir` when given, on `device` (default: cuda when present, else
    cpu) and in `precision` (runtime.PRECISIONS; default the config's, else fp32);
    predictions and summary.json go to `out`. `adapter`: the catalog dataset's adapter,
    passed on to a method that picks its paper's per-dataset settings by it
    (Method.takes_adapter)."""
    m = get_method(method)
    if config not in m.configs:
        raise ValueError(f"config {config!r} of {method}: unknown; known: {', '.join(m.configs)}")
    fn = m.train_function()
    return fn(
        store,
        scheme,
        out,
        config,
        **m.resolve(options),
        cache_dir=cache_dir,
        log=log,
        progress=progress,
        device=device,
        precision=precision,
        **({"adapter": adapter} if m.takes_adapter else {}),
    )
