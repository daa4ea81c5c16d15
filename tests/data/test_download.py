import hashlib
import zipfile

import pytest

from lmrec.data import load_dataset
from lmrec.data.datasets import fetch
from lmrec.data.download import DownloadError, download


def test_download_verifies_checksum_and_keeps_nothing_on_mismatch(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello lmrec")
    good = hashlib.md5(b"hello lmrec").hexdigest()
    dest = download(src.as_uri(), tmp_path / "out" / "file.bin", md5=good, progress=False)
    assert dest.read_bytes() == b"hello lmrec"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(src.as_uri(), tmp_path / "out" / "bad.bin", md5="0" * 32, progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["file.bin"]


def test_fetch_movielens_archive_from_local_url(tmp_path, monkeypatch):
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250951\n")
        zf.writestr("ml-100k/u.item", "10|Movie A (1995)|01-Jan-1995||http://x" + "|0" * 18 + "|1\n"
                                      "20|Movie B (1996)|01-Jan-1996||http://y|0|1" + "|0" * 17 + "\n")
        zf.writestr("ml-100k/u.user", "1|24|M|technician|85711\n")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    root = tmp_path / "data"
    target = fetch("ml-100k", root=root, url=archive.as_uri(), md5=md5)
    assert (target / "u.data").exists() and not (root / "ml-100k.zip").exists()
    monkeypatch.setenv("LMREC_DATA_DIR", str(root))
    ds = load_dataset("ml-100k")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 2, 3)
    assert ds.item_info["genres"].to_list() == ["Western", "Action"]
    with pytest.raises(DownloadError):
        fetch("ml-100k", root=tmp_path / "other", url=archive.as_uri(), md5="f" * 32)
    assert not (tmp_path / "other" / "movielens-100k" / "raw").exists()
