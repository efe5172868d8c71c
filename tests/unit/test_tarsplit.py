"""A layer is unpacked once and its tar rebuilt byte for byte from the files and the recorded
headers, whatever the tar holds; a file changed after unpacking is detected, not served."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from dockyard.archive import tarsplit
from dockyard.archive.tarapply import apply_tar
from dockyard.archive.tarread import TarReader
from dockyard.errors import InvalidArgument

from .test_tarapply import d, f, link, mk

pytestmark = pytest.mark.root


def unpack(tmp_path: Path, data: bytes, name: str = "layer") -> tuple[Path, str]:
    layer = tmp_path / name
    (layer / "fs").mkdir(parents=True)
    rec = tarsplit.Recorder(str(layer))
    res = apply_tar(io.BytesIO(data), str(layer / "fs"), recorder=rec)
    rec.finish(res.size, res.digest)
    return layer, res.digest


def rebuild(layer: Path) -> bytes:
    out = io.BytesIO()
    n = tarsplit.write_layer(str(layer), out)
    assert n == len(out.getvalue()) == tarsplit.info(str(layer))[0]
    return out.getvalue()


def special(name: str, typ: bytes, major: int = 0, minor: int = 0) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.devmajor, ti.devminor = typ, major, minor
    return ti


def varied(fmt: int) -> bytes:
    ti, data = f("etc/with-xattr", b"x" * 1000)
    if fmt == tarfile.PAX_FORMAT:
        ti.pax_headers = {"SCHILY.xattr.user.k": "v", "comment": "kept verbatim"}
    return mk([d("etc"), (ti, data), f("empty", b""), f("exact", b"e" * 512), f("odd", os.urandom(70001)),
               f("l" * 120 + "/" + "n" * 180, b"long"), link("sym", "etc/with-xattr"),
               link("hard", "odd", hard=True), link("s" * 150, "t" * 150),
               special("fifo", tarfile.FIFOTYPE), special("null", tarfile.CHRTYPE, 1, 3),
               d("wh"), f("wh/.wh.gone", b""), f("wh/.wh..wh..opq", b"")], fmt=fmt).getvalue()


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_rebuilt_tar_is_byte_identical(tmp_path, fmt):
    if fmt == tarfile.USTAR_FORMAT:
        data = mk([d("a"), f("a/b", b"123"), link("c", "a/b", hard=True)], fmt=fmt).getvalue()
    else:
        data = varied(fmt)
    data += bytes(4096) + b"trailing junk after the end marker"
    layer, digest = unpack(tmp_path, data)
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert rebuild(layer) == data
    # the record holds headers, not contents
    assert os.path.getsize(layer / "tarsplit") < len(data) // 4


def test_compressed_input_digest_and_rebuild_are_of_the_plain_tar(tmp_path):
    data = mk([f("a", os.urandom(10000)), f("b", b"b" * 100000)]).getvalue()
    layer, digest = unpack(tmp_path, gzip.compress(data))
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert rebuild(layer) == data


def test_payloads_removed_within_the_same_layer_are_kept(tmp_path):
    """Duplicates, a directory replaced by a file, a whiteout of a file of the same layer and
    a hardlink to a file later replaced: the overwritten payloads are still in the rebuilt tar."""
    data = mk([f("a", b"first"), f("a", b"second"),
               d("dir"), f("dir/inner", b"inner payload"), f("dir", b"now a file"),
               f("x", b"whited out"), f(".wh.x", b""),
               f("t", b"original"), link("h", "t", hard=True), f("t", b"replaced")]).getvalue()
    layer, _ = unpack(tmp_path, data)
    fs = layer / "fs"
    assert (fs / "a").read_bytes() == b"second" and (fs / "dir").read_bytes() == b"now a file"
    assert (fs / "h").read_bytes() == b"original" and (fs / "t").read_bytes() == b"replaced"
    assert os.stat(fs / "x").st_rdev == 0 and not (fs / "x").is_file()
    assert rebuild(layer) == data
    assert not list(fs.glob("**/attic"))   # the kept payloads live beside the tree, not in it


def test_paths_through_symlinks_are_recorded_where_they_landed(tmp_path):
    data = mk([d("real"), link("via", "real"), f("via/file", b"through a link"), d("via")]).getvalue()
    layer, _ = unpack(tmp_path, data)
    assert (layer / "fs" / "real" / "file").read_bytes() == b"through a link"
    assert (layer / "fs" / "via").is_dir()
    assert rebuild(layer) == data


def test_changed_file_is_detected(tmp_path):
    data = mk([f("a", b"abcdef")]).getvalue()
    layer, _ = unpack(tmp_path, data)
    (layer / "fs" / "a").write_bytes(b"abcdeX")
    with pytest.raises(InvalidArgument, match="changed"):
        rebuild(layer)


def test_failed_unpack_leaves_no_record(tmp_path):
    layer = tmp_path / "layer"
    (layer / "fs").mkdir(parents=True)
    rec = tarsplit.Recorder(str(layer))
    with pytest.raises(InvalidArgument):
        try:
            apply_tar(io.BytesIO(mk([f("ok", b"1"), f("../escape", b"2")]).getvalue()), str(layer / "fs"),
                      recorder=rec)
        except BaseException:
            rec.abort()
            raise
    assert sorted(p.name for p in layer.iterdir()) == ["fs"]


def test_reader_rejects_corrupt_headers():
    good = mk([f("a", b"1")]).getvalue()
    bad = bytearray(good)
    bad[0] ^= 0x20   # name changed, checksum not
    with pytest.raises(InvalidArgument, match="checksum"):
        list(TarReader(io.BytesIO(bytes(bad))))
    with pytest.raises(InvalidArgument, match="not a tar archive"):
        list(TarReader(io.BytesIO(good[:300])))
    with pytest.raises(InvalidArgument, match="unexpected end of archive"):
        r = TarReader(io.BytesIO(mk([f("big", b"y" * 5000)]).getvalue()[:2000]))
        for _ in r:
            r.read_payload()
    pax = tarfile.TarInfo("p")
    pax.pax_headers = {"path": "x" * 10}
    raw = bytearray(mk([pax]).getvalue())
    i = raw.index(b"path=")
    raw[i - 3:i - 1] = b"99"   # a record length past the header's end
    hdr = raw[:512]
    hdr[148:156] = b" " * 8
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    raw[:512] = hdr
    with pytest.raises(InvalidArgument, match="PAX"):
        list(TarReader(io.BytesIO(bytes(raw))))


def test_reader_numbers_base256_and_names():
    ti, data = f("big-uid", b"1")
    ti.uid = 1 << 30   # too big for octal in GNU format: base-256
    entries = list(TarReader(mk([(ti, data)], fmt=tarfile.GNU_FORMAT)))
    assert entries[0].uid == 1 << 30 and entries[0].name == "big-uid"
