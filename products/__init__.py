"""The registry of products, in dependency order. Adding a product: one file here with a
PRODUCT declaration, its arrays in schemas/arrays.py (group = its name), a line below."""

from __future__ import annotations

from products import clip, crop, depth, flow, micro
from products.base import FINGERPRINT_SCHEME, Context, Excluded, Product

REGISTRY: dict[str, Product] = {
    p.name: p for p in (crop.PRODUCT, depth.PRODUCT, flow.PRODUCT, micro.PRODUCT, clip.PRODUCT)
}

__all__ = [
    "REGISTRY",
    "FINGERPRINT_SCHEME",
    "Context",
    "Excluded",
    "Product",
    "versions",
    "fingerprints",
    "products_for_arrays",
    "closure",
    "groups_for",
]


def versions() -> dict[str, str]:
    return {p.name: p.version for p in REGISTRY.values()}


def closure(names) -> tuple[str, ...]:
    """`names` and every product they depend on, in registry (dependency) order."""
    need, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n not in REGISTRY:
            raise KeyError(f"unknown product {n!r}; known: {list(REGISTRY)}")
        if n not in need:
            need.add(n)
            todo += REGISTRY[n].depends
    return tuple(n for n in REGISTRY if n in need)


def products_for_arrays(arrays, has_depth: bool) -> tuple[str, ...]:
    """The products that write `arrays` (store names) and those they build on, in order;
    depth only for datasets that have it. The crop product is always made (every other
    product starts from its box)."""
    from schemas.arrays import ARRAYS

    names = closure({"crop"} | {ARRAYS[a].group for a in arrays})
    return tuple(n for n in names if has_depth or n != "depth")


def fingerprints(row: dict, params: dict, has_depth: bool, file_hash) -> dict[str, str | None]:
    """{product: fingerprint} of one sample (base.Product.fingerprint, upstream first)."""
    out: dict[str, str | None] = {}
    for name, p in REGISTRY.items():
        out[name] = p.fingerprint(row, params, has_depth, file_hash, out)
    return out


def groups_for(methods: list[str] | None, has_depth: bool) -> tuple[str, ...]:
    """Products needed by the feeds of `methods` (schemas.feeds; None = all), in order."""
    from schemas.feeds import FEEDS

    ms = list(FEEDS) if not methods else methods
    unknown = [m for m in ms if m not in FEEDS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {sorted(FEEDS)}")
    return products_for_arrays([a for m in ms for a in FEEDS[m].arrays], has_depth)
