import pytest

from stages.aus import AUParseError, au_marked, au_numbers, parse_au_string


@pytest.mark.parametrize(
    "raw,aus",
    [
        ("4+L10", [4, 10]),
        ("R12 + R15", [12, 15]),
        ("R14A", [14]),
        ("T28+14", [14, 28]),
        ("AU4(2)", [4]),
        ("1+2 or 4", [1, 2, 4]),
        ("1，2", [1, 2]),
        ("AU1+AU2", [1, 2]),
        (5, [5]),
        (12.0, [12]),
        (None, []),
        (float("nan"), []),
        ("", []),
    ],
)
def test_forms(raw, aus):
    assert au_numbers(raw) == aus


def test_details_kept():
    d = parse_au_string("L10+R14A or AU4(2)")
    assert d[0] == {"au": 10, "side": "L", "intensity": None, "count": None, "marker": None, "alternative": False}
    assert d[1]["side"] == "R" and d[1]["intensity"] == "A"
    assert d[2] == {"au": 4, "side": None, "intensity": None, "count": 2, "marker": None, "alternative": True}


def test_coders_markers_are_kept_and_flagged():
    """4DME's (k) (AU12(k), 25+26(k)) and CAS(ME)^3 Part C's uncertain '13?' parse to their AU
    numbers with the marker kept; a count in parentheses is not a marker."""
    assert [(d["au"], d["marker"]) for d in parse_au_string("25+26(k)")] == [(25, None), (26, "k")]
    assert [(d["au"], d["marker"]) for d in parse_au_string("AU12(K)")] == [(12, "k")]
    assert [(d["au"], d["marker"], d["side"]) for d in parse_au_string("R13?,4")] == [(13, "?", "R"), (4, None, None)]
    assert (au_numbers("AUR2+12(k)+45"), au_marked("AUR2+12(k)+45")) == ([2, 12, 45], [12])
    assert au_marked("AU4(2)") == [] and au_marked(None) == []
    with pytest.raises(AUParseError):
        parse_au_string("12(x)")


def test_garbage_is_an_error():
    with pytest.raises(AUParseError, match="smile"):
        parse_au_string("12+smile")
