"""The text-embedding cache with several processes writing at once."""

import subprocess
import sys
import textwrap

import numpy as np

from lmrec.content.encoder import EmbeddingCache

WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from lmrec.content.encoder import EmbeddingCache

    directory, name = sys.argv[1], sys.argv[2]
    cache = EmbeddingCache(directory)
    for batch in range(40):
        keys = [f"{name}-{batch}-{j}".encode().ljust(64, b"-") for j in range(5)]
        # Each key's vector is derived from the key, so any mix-up of rows is visible.
        vectors = np.stack([np.frombuffer(k[:16], dtype=np.uint8).astype(np.float32) for k in keys])
        cache.put(keys, vectors)
        found = cache.get(keys)
        assert all(np.array_equal(found[k], v) for k, v in zip(keys, vectors)), "a just-written row is wrong"
""")


def expected_vector(key: bytes) -> np.ndarray:
    return np.frombuffer(key[:16], dtype=np.uint8).astype(np.float32)


def test_two_processes_writing_at_once_lose_and_mix_up_nothing(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name], stderr=subprocess.PIPE)
             for name in ("alpha", "bravo", "charlie")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    keys = [f"{name}-{b}-{j}".encode().ljust(64, b"-") for name in ("alpha", "bravo", "charlie")
            for b in range(40) for j in range(5)]
    found = EmbeddingCache(tmp_path).get(keys)
    assert len(found) == len(keys) == 600  # no writer lost another's rows
    assert all(np.array_equal(found[k], expected_vector(k)) for k in keys)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "cache.npz"]  # no temporary left behind


def test_an_existing_key_is_not_written_twice(tmp_path):
    cache = EmbeddingCache(tmp_path)
    key = b"k".ljust(64, b"-")
    cache.put([key], np.ones((1, 3), dtype=np.float32))
    cache.put([key], np.zeros((1, 3), dtype=np.float32))  # the first vector stays
    assert set(cache.get([key, b"other"])) == {key}
    assert cache.get([key])[key].tolist() == [1.0, 1.0, 1.0]
