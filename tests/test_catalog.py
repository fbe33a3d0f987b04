import pytest

from pipeline.catalog import CatalogError, load_catalog
from tests.conftest import REPO, write_catalog


def test_repo_catalog_loads():
    cat = load_catalog(REPO / "catalog.yaml")
    assert {"demo", "casme3"} <= set(cat.datasets)
    assert cat.dataset("casme3").params["depth"]["fill"] == "nearest"


def test_root_from_env(tmp_path, monkeypatch):
    cat = load_catalog(write_catalog(tmp_path))
    ds = cat.dataset("t")
    monkeypatch.delenv("MEPIPE_TEST_ROOT", raising=False)
    with pytest.raises(CatalogError, match="MEPIPE_TEST_ROOT is not set.*datasets.t.root_env"):
        ds.root()
    monkeypatch.setenv("MEPIPE_TEST_ROOT", str(tmp_path / "absent"))
    with pytest.raises(CatalogError, match="is not a directory"):
        ds.root()
    monkeypatch.setenv("MEPIPE_TEST_ROOT", str(tmp_path))
    with pytest.raises(CatalogError, match="datasets.t.annotation: file .* not found"):
        ds.file("annotation")


def test_symlink_loop_root(tmp_path, monkeypatch):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    monkeypatch.setenv("MEPIPE_TEST_ROOT", str(tmp_path / "a"))
    ds = load_catalog(write_catalog(tmp_path)).dataset("t")
    with pytest.raises(CatalogError, match="datasets.t.root_env"):
        ds.root()


@pytest.mark.parametrize(
    "edit,match",
    [
        (("fps: 30", "fsp: 30"), r"datasets\.t\.fsp: unknown key"),
        (("fps: 30", "fps: fast"), r"datasets\.t\.fps: expected"),
        (("adapter: casme3_part_a", "adapter: casme9"), r"datasets\.t\.adapter: unknown adapter"),
        (("label_scheme: casme3_7", "label_scheme: nope"), r"datasets\.t\.label_scheme"),
        (("modalities: [rgb, depth]", "modalities: [rgb, thermal]"), r"datasets\.t\.modalities"),
        (("fps: 30", "fps: 0"), r"datasets\.t\.fps: expected a positive, finite frame rate, got 0"),
        (("fps: 30", "fps: -200"), r"datasets\.t\.fps: expected a positive, finite frame rate"),
        (("fps: 30", "fps: .inf"), r"datasets\.t\.fps: expected a positive, finite frame rate, got inf"),
    ],
)
def test_typos_name_the_key(tmp_path, edit, match):
    p = write_catalog(tmp_path)
    p.write_text(p.read_text().replace(*edit))
    with pytest.raises(CatalogError, match=match):
        load_catalog(p)


@pytest.mark.parametrize(
    "params,match",
    [
        ("depth: {fil: nearest}\n", r"datasets\.t\.params\.depth\.fil: unknown parameter"),
        ("depth: {fill: median}\n", r"datasets\.t\.params\.depth\.fill: 'median' is not one of"),
        ("depth: {window: five}\n", r"datasets\.t\.params\.depth\.window: expected int"),
        ("flow: {x: 1}\n", r"datasets\.t\.params\.flow: unknown stage"),
        # right type, out of range (issue 15, item 4): refused at load, naming key and range
        ("depth: {window: -3}\n", r"datasets\.t\.params\.depth\.window: -3 is out of range; expected >= 1"),
        ("tvl1: {scaleStep: 1.5}\n", r"params\.tvl1\.scaleStep: 1\.5 is out of range; expected in \(0, 1\)"),
        ("magnify: {alpha: .nan}\n", r"params\.magnify\.alpha: expected a finite number, got nan"),
        ("au: {phi: -1.0}\n", r"params\.au\.phi: -1\.0 is out of range; expected >= 0"),
        ("farneback: {poly_sigma: 0.0}\n", r"params\.farneback\.poly_sigma: 0\.0 is out of range"),
    ],
)
def test_param_errors(tmp_path, params, match):
    with pytest.raises(CatalogError, match=match):
        load_catalog(write_catalog(tmp_path, params=params))


def test_unknown_dataset(tmp_path):
    with pytest.raises(CatalogError, match="unknown dataset 'x'"):
        load_catalog(write_catalog(tmp_path)).dataset("x")


def test_a_key_given_twice_is_an_error_naming_it_and_both_lines(tmp_path):
    """Issue 15, item 14: plain YAML keeps the last of two `fps:` silently."""
    p = write_catalog(tmp_path)
    text = p.read_text()
    p.write_text(text.replace("    fps: 30\n", "    fps: 30\n    fps: 60\n"))
    lines = p.read_text().splitlines()
    first = lines.index("    fps: 30") + 1
    with pytest.raises(
        CatalogError, match=rf"key 'fps' is given twice in one mapping \(lines {first} and {first + 1}\)"
    ):
        load_catalog(p)


@pytest.mark.parametrize("word", ["no", "1", "null"])
def test_a_label_word_that_yaml_reads_as_another_type_is_a_catalog_error(tmp_path, word):
    p = write_catalog(tmp_path)
    p.write_text(p.read_text().replace("others: [others]", f"others: [others, {word}]"))
    with pytest.raises(CatalogError, match=r"label_schemes\.casme3_7\.others: \[.*\] not words"):
        load_catalog(p)
