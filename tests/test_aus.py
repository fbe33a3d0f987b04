import pytest

from stages.aus import AUParseError, au_numbers, parse_au_string


@pytest.mark.parametrize("raw,aus", [
    ("4+L10", [4, 10]), ("R12 + R15", [12, 15]), ("R14A", [14]), ("T28+14", [14, 28]),
    ("AU4(2)", [4]), ("1+2 or 4", [1, 2, 4]), ("1，2", [1, 2]), ("AU1+AU2", [1, 2]),
    (5, [5]), (12.0, [12]), (None, []), (float("nan"), []), ("", []),
])
def test_forms(raw, aus):
    assert au_numbers(raw) == aus


def test_details_kept():
    d = parse_au_string("L10+R14A or AU4(2)")
    assert d[0] == {"au": 10, "side": "L", "intensity": None, "count": None, "alternative": False}
    assert d[1]["side"] == "R" and d[1]["intensity"] == "A"
    assert d[2] == {"au": 4, "side": None, "intensity": None, "count": 2, "alternative": True}


def test_garbage_is_an_error():
    with pytest.raises(AUParseError, match="smile"):
        parse_au_string("12+smile")
