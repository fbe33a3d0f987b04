"""What a method declares (training/<method>/__init__.py: `METHOD = Method(...)`).

A declaration is data and imports no torch: the CLI reads every method's options and
configs to build its parser. The feed Dataset and the trainer are named "module:attribute"
and imported when used."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from schemas.feeds import FEEDS, Feed


@dataclass(frozen=True)
class Option:
    """A method-specific option: the trainer's keyword `name`, the CLI's `--name` (with
    '-' for '_'). `default` None: an optional value such as a local file (the CLI's empty
    string means none); `choices`: the values it takes (None: any)."""

    name: str
    help: str
    default: str | None = None
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def load(ref: str):
    """The object a "package.module:attribute" reference names."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Method:
    """name: the registry's, the CLI's METHOD and the feed's (schemas.feeds.FEEDS).
    configs: {config name: hyper-parameters} ('tiny' for a CPU, 'paper' the paper's).
    dataset / trainer: "module:attribute" of its feed Dataset class and of its train
    function, called trainer(store, scheme, out, config, *, <options>, cache_dir, log,
    progress) -> summary dict. options: the method-specific options it takes.
    tag_options: the options whose values name its run folder after method and config.
    schemes: {dataset adapter: the label scheme of the method's paper on that dataset}
    (`mepipe train --scheme` overrides; otherwise the dataset's own label_scheme).
    takes_adapter: the trainer also takes `adapter`, the catalog dataset's adapter (e.g.
    casme2), to pick settings its paper gives per dataset (MicroAUCLIP's AU set, alpha, beta)."""

    name: str
    configs: dict
    dataset: str
    trainer: str
    options: tuple[Option, ...] = ()
    tag_options: tuple[str, ...] = ()
    schemes: dict | None = None
    takes_adapter: bool = False

    def scheme_for(self, adapter: str, dataset_scheme: str) -> str:
        """The label scheme this method trains under on a dataset read by `adapter`."""
        return (self.schemes or {}).get(adapter, dataset_scheme)

    @property
    def feed(self) -> Feed:
        return FEEDS[self.name]

    @property
    def seed(self) -> str:
        """The method's paper id (seed 000 ... 004), from its feed."""
        return self.feed.seed

    def dataset_class(self):
        return load(self.dataset)

    def train_function(self):
        return load(self.trainer)

    def resolve(self, options: dict | None = None) -> dict:
        """Every option of this method with its value: given ones (an empty string is
        None), defaults for the rest; an option it does not take is an error."""
        options = dict(options or {})
        known = {o.name: o for o in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"method {self.name!r} takes no option {unknown}; its options: {sorted(known)}")
        out = {}
        for name, o in known.items():
            v = options.get(name, o.default)
            if v == "":
                v = None
            if o.choices is not None and v not in o.choices:
                raise ValueError(f"{o.flag} {v!r}: not one of {list(o.choices)}")
            out[name] = v
        return out

    def tag(self, config: str, options: dict | None = None) -> str:
        """The run folder's name: <method>-<config>[-<value of each tag option>]."""
        opts = self.resolve(options)
        return "-".join([self.name, config, *(str(opts[o]) for o in self.tag_options)])
