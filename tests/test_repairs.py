"""Sheet repairs (stages.adapters.repairs) on hand-written sheets: applied only where the
sheet holds the value the repair was written for."""

import pandas as pd
import pytest

from stages.adapters.repairs import ANY, NOT_A_FRAME, Repair, RepairError, Swap, apply_repairs, same_value

SHEET = pd.DataFrame(
    {
        "Subject": ["spNO.1", "spNO.1", "spNO.2"],
        "Onset": [5, 0, 7],
        "Apex": ["9", "0", "/"],
        "AU": ["4", "12", "1+2"],
        "Pos": [0, 1, 0],
    }
)
ROWS = [2, 3, 4]  # sheet rows of the three data rows (header = row 1)


def test_set_values_and_notes():
    out, rec, notes = apply_repairs(
        SHEET,
        ROWS,
        [
            Repair(3, "Onset", 0, 1, "authors' list"),
            Repair(3, "Apex", "0", 1, "authors' list", {"Subject": "spNO.1"}),
            Repair(4, "Apex", NOT_A_FRAME, 12, "a loader"),
        ],
        "s.xlsx",
    )
    assert list(out["Onset"]) == [5, 1, 7] and list(out["Apex"]) == ["9", 1, 12]
    assert list(SHEET["Onset"]) == [5, 0, 7]  # the input is not modified
    assert [r["applied"] for r in rec] == [True, True, True]
    assert notes[3] == ["repaired: Onset 0 -> 1 (authors' list)", "repaired: Apex 0 -> 1 (authors' list)"]
    assert notes[4] == ["repaired: Apex '/' -> 12 (a loader)"]  # the cell as the sheet had it


def test_a_sheet_that_holds_the_repaired_value_already_is_fine():
    fixed = SHEET.assign(Onset=[5, 1, 7])
    out, rec, notes = apply_repairs(fixed, ROWS, [Repair(3, "Onset", 0, 1, "x")], "s.xlsx")
    assert rec[0]["applied"] is False and "already holds" in rec[0]["why"] and notes == {}


@pytest.mark.parametrize(
    "rep, msg",
    [
        (
            Repair(3, "Onset", 2, 1, "src"),
            r"s.xlsx row 3: Onset is 0, the repair \(row 3 Onset 2 -> 1; src\) expects 2: "
            "the sheet is not the one the repair was written for",
        ),
        (
            Repair(2, "Apex", NOT_A_FRAME, 3, "src"),
            "Apex is 9, the repair .* expects \\(blank or not a frame number\\)",
        ),
        (Repair(9, "Onset", 0, 1, "src"), "names sheet row 9, but the sheet's data rows are 2..4"),
        (Repair(3, "Offset", 0, 1, "src"), "names column\\(s\\) \\['Offset'\\], not in the sheet"),
        (
            Repair(3, "Onset", 0, 1, "src", {"Subject": "spNO.9"}),
            "row 3: Subject is 'spNO.1', the repair .* is for Subject",
        ),
        (Swap((2, 3), ("Subject",), "src"), "would change nothing: rows 2 and 3 hold the same Subject"),
    ],
)
def test_mismatches_are_errors_naming_file_row_and_source(rep, msg):
    with pytest.raises(RepairError, match=msg):
        apply_repairs(SHEET, ROWS, [rep], "s.xlsx")


def test_swap_from_a_column_to_the_end():
    out, rec, notes = apply_repairs(SHEET, ROWS, [Swap((2, 3), source="loader", columns_from="AU")], "s.xlsx")
    assert list(out["AU"]) == ["12", "4", "1+2"] and list(out["Pos"]) == [1, 0, 0]
    assert list(out["Onset"]) == [5, 0, 7]  # columns before AU untouched
    assert rec[0]["column"] == ["AU", "Pos"] and rec[0]["old"] == [["4", 0], ["12", 1]]
    assert notes[2] == ["repaired: AU 4 -> 12, Pos 0 -> 1 (exchanged with row 3, loader)"]


def test_same_value():
    assert same_value("14", 14) and same_value(14.0, "14") and same_value(None, float("nan"))
    assert same_value(" x ", "x") and not same_value("x", None) and not same_value(3, 4)
    assert same_value("/", NOT_A_FRAME) and same_value(None, NOT_A_FRAME) and not same_value(7, NOT_A_FRAME)


def test_any_old_value_is_replaced_and_recorded():
    out, rec, notes = apply_repairs(SHEET, ROWS, [Repair(2, "Onset", ANY, 6, "a loader")], "s.xlsx")
    assert out["Onset"].iloc[0] == 6 and rec[0]["sheet_value"] == 5 and rec[0]["applied"]
    assert notes[2] == ["repaired: Onset 5 -> 6 (a loader)"]


ONE_HOT = pd.DataFrame(
    {
        "Emotion": ["Positive", "Negative", "Surprise"],
        "AUs": ["4", "12", "1"],
        "Positive": [0, 1, 0],
        "Negative": [1, 0, 0],
        "Surprise": [0, 0, 1],
    }
)


def test_a_label_swap_is_checked_against_the_rows_own_label_cell():
    swap = Swap((2, 3), source="loader", columns_from="AUs", labels_agree_with="Emotion")
    out, rec, _ = apply_repairs(ONE_HOT, ROWS, [swap], "4d.xlsx")
    assert list(out["AUs"]) == ["12", "4", "1"] and list(out["Positive"]) == [1, 0, 0] and rec[0]["applied"]
    # applied to its own output: both rows agree already -> nothing done, said so
    again, rec2, notes2 = apply_repairs(out, ROWS, [swap], "4d.xlsx")
    assert again.equals(out) and not rec2[0]["applied"] and notes2 == {}
    # one row agreeing and the other not: the sheet is neither the broken nor the fixed one
    half = ONE_HOT.assign(Positive=[1, 1, 0])
    with pytest.raises(RepairError, match="agree with Emotion\\? yes/no now, yes/yes after the swap"):
        apply_repairs(half, ROWS, [swap], "4d.xlsx")
    with pytest.raises(RepairError, match="Emotion 'happy' names no column among the swapped ones"):
        apply_repairs(ONE_HOT.assign(Emotion=["happy", "Negative", "Surprise"]), ROWS, [swap], "4d.xlsx")


def test_an_empty_sheet_says_so():
    with pytest.raises(RepairError, match="names sheet row 3, but the sheet has no data rows"):
        apply_repairs(SHEET.head(0), [], [Repair(3, "Onset", 0, 1, "src")], "s.xlsx")
