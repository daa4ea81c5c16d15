import numpy as np

from lmrec.data.sequences import Sequences


def test_take_and_padding():
    s = Sequences.from_lists([[1, 2, 3], [], [4, 5, 6, 7, 8]])
    assert [list(s.take([2, 0])[i]) for i in range(2)] == [[4, 5, 6, 7, 8], [1, 2, 3]]
    np.testing.assert_array_equal(s.to_padded(4, pad=0), [[0, 1, 2, 3], [0, 0, 0, 0], [5, 6, 7, 8]])
    assert s.to_matrix(9).toarray()[2].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]


def test_matrix_counts_repeats_once_when_binary():
    s = Sequences.from_lists([[1, 1, 2]])
    assert s.to_matrix(3).toarray().tolist() == [[0, 1, 1]]
    assert s.to_matrix(3, binary=False).toarray().tolist() == [[0, 2, 1]]


def test_concat_keeps_every_row_in_order():
    out = Sequences.concat(Sequences.from_lists([[1, 2], []]), Sequences.from_lists([[3]]), Sequences.from_lists([]))
    assert [out[r].tolist() for r in range(len(out))] == [[1, 2], [], [3]]
