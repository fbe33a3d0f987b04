"""One feed per method: the arrays, per-sample shapes, dtypes and manifest columns each
of the five methods reads (METHODS.md). `make preprocess METHODS=fdp,dvscl` computes the
products of those feeds only (products.groups_for). `Feed.unavailable` says whether a
manifest row has a feed's arrays written: the one place outside the engine that reads
the manifest's per-product fingerprint columns."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.arrays import ARRAYS


@dataclass(frozen=True)
class Feed:
    method: str
    seed: str
    arrays: tuple  # store array names
    columns: tuple  # manifest columns it reads
    note: str

    def groups(self, arrays=None) -> tuple[str, ...]:
        """The products (schemas.arrays `group`) that write `arrays` (default: all of this
        feed's), in the order of first mention."""
        return tuple(dict.fromkeys(ARRAYS[a].group for a in (self.arrays if arrays is None else arrays)))

    def unavailable(self, row: dict, arrays=None) -> str | None:
        """Why the manifest row `row` does not have `arrays` (default: all of this feed's)
        written, or None when it has. Checked: the sample is `ok` (an excluded row is never
        written; "excluded: <reason>"), and every product writing those arrays has a
        fingerprint in the row (`fp_<product>`, schemas/tables.py: the engine sets it where
        it wrote that product's arrays for this row and leaves it empty where it did not, e.g.
        no depth frames, or a run that computed other methods' products only;
        "no <product> for this sample")."""
        if row["status"] != "ok":
            return f"excluded: {row['reason']}"
        for g in self.groups(arrays):
            if not isinstance(row.get(f"fp_{g}"), str):
                return f"no {g} for this sample"
        return None


_COMMON = ("sample_id", "subject", "emotion", "index", "status", "source")
FEEDS = {
    f.method: f
    for f in [
        Feed(
            "dvscl",
            "000",
            ("pairs/rgb_diff", "pairs/depth_diff", "pairs/gray_diff"),
            _COMMON,
            "apex - onset differences of 310x310 crops; RGB view + depth (or gray) view; "
            "labelled + AU-selected pairs for pretraining",
        ),
        Feed(
            "selfme",
            "001",
            ("clips/frames72", "pairs/flow_tvl1"),
            _COMMON + ("clip_start", "clip_len"),
            "random frame pairs of whole aligned clips (motion learning); TV-L1 onset->apex flow (baseline)",
        ),
        Feed(
            "attrcl",
            "002",
            ("attrcl/rgb16", "attrcl/flow16"),
            _COMMON + ("au_list", "au_raw"),
            "16 TIM frames of 112x112 + Farnebäck flow sequence; AU list -> FACS descriptions",
        ),
        Feed(
            "fdp",
            "003",
            ("clips/frames72", "fdp/dynamic_image"),
            _COMMON + ("clip_start", "clip_len"),
            "whole aligned 72x72 clips (8 frames sampled at load time, random offset) + dynamic image",
        ),
        Feed(
            "microauclip",
            "004",
            ("micro/flow224", "micro/apex_landmarks224"),
            _COMMON + ("au_list",),
            "224x224 TV-L1 flow of x3 magnified onset->apex + 68 apex landmarks in that image",
        ),
    ]
}
