import numpy as np
import polars as pl
import pytest

from lmrec.content.vectors import Whitening, load_item_vectors
from lmrec.errors import DataValidationError


def test_parquet_list_column_matched_by_id_normalised_and_zero_when_missing(tmp_path):
    path = tmp_path / "img.parquet"
    pl.DataFrame({"item_id": ["b", "a"], "vec": [[0.0, 2.0], [3.0, 4.0]]}).write_parquet(path)
    out = load_item_vectors(path, ["a", "b", "c"])
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 1.0], [0.0, 0.0]], atol=1e-6)


def test_parquet_numeric_columns_and_integer_ids(tmp_path):
    path = tmp_path / "audio.parquet"
    pl.DataFrame({"item": [1, 2], "d0": [1.0, 0.0], "d1": [0.0, 5.0]}).write_parquet(path)
    np.testing.assert_allclose(load_item_vectors(path, [2, 1]), [[0.0, 1.0], [1.0, 0.0]])


def test_npy_needs_its_ids_file(tmp_path):
    path = tmp_path / "img.npy"
    np.save(path, np.array([[1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(DataValidationError, match=r"img\.ids\.txt") as err:
        load_item_vectors(path, ["x"])
    assert err.value.path == str(path)
    (tmp_path / "img.ids.txt").write_text("y\nx\n")
    np.testing.assert_allclose(load_item_vectors(path, ["x", "y"]), [[0.0, 1.0], [1.0, 0.0]])


@pytest.mark.parametrize("frame, message", [
    ({"item_id": ["a", "a"], "vec": [[1.0], [2.0]]}, "more than once"),
    ({"item_id": ["a"], "vec": [[float("nan")]]}, "finite"),
    ({"item_id": ["z"], "vec": [[1.0]]}, "none of the 1 catalogue item ids"),
    ({"item_id": ["a"], "label": ["cat"]}, "float lists"),
])
def test_bad_files_name_the_problem(tmp_path, frame, message):
    path = tmp_path / "v.parquet"
    pl.DataFrame(frame).write_parquet(path)
    with pytest.raises(DataValidationError, match=message):
        load_item_vectors(path, ["a"])


def test_unsupported_suffix(tmp_path):
    (tmp_path / "v.csv").write_text("a,1\n")
    with pytest.raises(DataValidationError, match=r"\.parquet or \.npy"):
        load_item_vectors(tmp_path / "v.csv", ["a"])


def test_whitening_by_hand():
    """Points (+-2, +-1) around (1, 1): variances 4 and 1 along the axes, mean variance 2.5."""
    x = np.array([[3, 2], [3, 0], [-1, 2], [-1, 0]], dtype=np.float32)
    for shrinkage in (0.0, 0.4):
        w = Whitening.fit(x, shrinkage)
        np.testing.assert_allclose(w.mean, [1, 1])
        np.testing.assert_allclose(w.matrix, np.diag([(4 + 2.5 * shrinkage) ** -0.5, (1 + 2.5 * shrinkage) ** -0.5]),
                                   atol=1e-6)
    # Without shrinkage both directions get unit variance, so (3, 2) - mean = (2, 1) -> (1, 1), then unit length.
    np.testing.assert_allclose(Whitening.fit(x, 0.0)(x[:1]), [[2**-0.5, 2**-0.5]], atol=1e-6)
    # A zero row (an item with no vector) stays zero instead of becoming the negated mean.
    assert not Whitening.fit(x, 0.0)(np.zeros((1, 2), np.float32)).any()
    state = Whitening.fit(x, 0.4).state()
    again = Whitening.from_state(dict(state))
    np.testing.assert_array_equal(again.matrix, state["whiten_matrix"])
    assert Whitening.from_state({"vectors": x}) is None


def test_whitening_ignores_directions_the_catalogue_does_not_vary_in():
    """Two items differ along x only: an added item's z component must not be blown up."""
    catalogue = np.array([[1, 0, 0], [-1, 0, 0]], dtype=np.float32)
    w = Whitening.fit(catalogue, 0.1)
    np.testing.assert_allclose(w(np.array([[0.5, 0, 3]], dtype=np.float32)), [[1, 0, 0]], atol=1e-6)
