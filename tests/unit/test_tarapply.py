"""The hostile-archive corpus: every entry is rejected or contained, the host untouched."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.archive.tarapply import apply_tar
from dockyard.errors import InvalidArgument

pytestmark = pytest.mark.root


def mk(entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]], fmt=tarfile.PAX_FORMAT) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            if isinstance(e, tuple):
                tf.addfile(e[0], io.BytesIO(e[1]))
            else:
                tf.addfile(e)
    buf.seek(0)
    return buf


def f(name: str, data: bytes = b"x", mode: int = 0o644, uid: int = 0) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.uid, ti.gid = len(data), mode, uid, uid
    return ti, data


def link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    ti.linkname = target
    return ti


def d(name: str, mode: int = 0o755) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode = tarfile.DIRTYPE, mode
    return ti


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory next to the root that must stay untouched."""
    o = tmp_path / "outside"
    o.mkdir()
    (o / "secret").write_text("host")
    os.chmod(o / "secret", 0o600)
    return o


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "a" / "b" / "root"
    r.mkdir(parents=True)
    return r


def snapshot(p: Path) -> list[tuple[str, int, int]]:
    return sorted((str(x), x.lstat().st_mode, x.lstat().st_nlink) for x in p.rglob("*"))


def test_dotdot_rejected(root, outside):
    before = snapshot(outside)
    with pytest.raises(InvalidArgument, match="escapes"):
        apply_tar(mk([f("../../../outside/secret", b"pwned")]), str(root))
    assert snapshot(outside) == before and (outside / "secret").read_text() == "host"


def test_absolute_path_contained(root, outside):
    apply_tar(mk([f(str(outside / "secret"), b"inside")]), str(root))
    assert (outside / "secret").read_text() == "host"
    assert (root / str(outside / "secret").lstrip("/")).read_text() == "inside"


@pytest.mark.parametrize("target", ["/", "../../..", "/../../.."])
def test_symlink_then_file_through_it(root, outside, target):
    apply_tar(mk([link("esc", target), f(f"esc/{outside.relative_to('/')}/secret", b"pwned")]), str(root))
    assert (outside / "secret").read_text() == "host"
    assert (root / outside.relative_to("/") / "secret").read_text() == "pwned"


def test_symlink_to_outside_dir_then_file(root, outside):
    apply_tar(mk([link("dir", str(outside)), f("dir/new", b"pwned")]), str(root))
    assert not (outside / "new").exists()
    assert (root / outside.relative_to("/") / "new").read_text() == "pwned"


def test_hardlink_to_outside_rejected(root, outside):
    nlink = (outside / "secret").stat().st_nlink
    with pytest.raises(InvalidArgument):
        apply_tar(mk([link("hl", str(outside / "secret"), hard=True)]), str(root))
    with pytest.raises(InvalidArgument):
        apply_tar(mk([link("hl2", "../../../outside/secret", hard=True)]), str(root))
    assert (outside / "secret").stat().st_nlink == nlink


def test_hardlink_behind_symlink_stays_inside(root, outside):
    nlink = (outside / "secret").stat().st_nlink
    ents = [link("s", str(outside)), link("h", "s/secret", hard=True)]
    with pytest.raises(InvalidArgument):
        apply_tar(mk(ents), str(root))
    assert (outside / "secret").stat().st_nlink == nlink
    ents = [f(f"{outside.relative_to('/')}/secret", b"in-root"), link("s", str(outside)), link("h", "s/secret", hard=True)]
    apply_tar(mk(ents), str(root))
    assert (root / "h").read_text() == "in-root" and (outside / "secret").stat().st_nlink == nlink


def test_chmod_through_symlink_cve_2021_41089(root, outside):
    ents = [link("x", str(outside / "secret")), f("x", b"new", mode=0o777)]
    apply_tar(mk(ents), str(root))
    assert stat.S_IMODE((outside / "secret").stat().st_mode) == 0o600
    assert not (root / "x").is_symlink() and (root / "x").read_bytes() == b"new"


def test_devices(root):
    dev = tarfile.TarInfo("dev/null")
    dev.type, dev.devmajor, dev.devminor, dev.mode = tarfile.CHRTYPE, 1, 3, 0o666
    with pytest.raises(InvalidArgument, match="device"):
        apply_tar(mk([dev]), str(root), allow_devices=False)
    apply_tar(mk([dev]), str(root), allow_devices=True)
    st = (root / "dev" / "null").lstat()
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1


def test_setuid_preserved_not_escalated(root):
    apply_tar(mk([f("bin/tool", b"#!", mode=0o4755, uid=1000)]), str(root))
    st = (root / "bin" / "tool").stat()
    assert stat.S_IMODE(st.st_mode) == 0o4755 and st.st_uid == 1000


def test_duplicates_last_wins_and_type_changes(root):
    apply_tar(mk([f("a", b"1"), f("a", b"2"), d("b"), f("b/c"), f("b", b"file now")]), str(root))
    assert (root / "a").read_bytes() == b"2" and (root / "b").read_bytes() == b"file now"


def test_truncated_archive(root):
    data = mk([f("big", b"y" * 100000)]).getvalue()[:30000]
    with pytest.raises(InvalidArgument):
        apply_tar(io.BytesIO(data), str(root))


def test_gzip_bomb_bounded(root):
    raw = mk([f("bomb", b"\0" * (20 << 20))]).getvalue()
    gz = io.BytesIO(gzip.compress(raw))
    assert len(gz.getvalue()) < 100_000
    with pytest.raises(InvalidArgument, match="limit"):
        apply_tar(gz, str(root), max_bytes=1 << 20)


def test_odd_and_long_names(root):
    long = "d" * 120 + "/" + "n" * 200
    apply_tar(mk([f("new\nline", b"1"), f(long, b"2")]), str(root))
    assert (root / "new\nline").read_bytes() == b"1"
    assert (root / long).read_bytes() == b"2"
    apply_tar(mk([f("g" * 150 + "/x" * 60, b"3")], fmt=tarfile.GNU_FORMAT), str(root))
    assert (root / ("g" * 150 + "/x" * 60)).read_bytes() == b"3"


def test_xattrs_and_whiteouts(root):
    ti, data = f("file", b"1")
    ti.pax_headers = {"SCHILY.xattr.user.k": "v"}
    apply_tar(mk([ti, data and (ti, data), d("dir"), f("dir/.wh..wh..opq", b""), f(".wh.gone", b"")][1:]), str(root))
    assert os.getxattr(root / "file", "user.k") == b"v"
    assert os.getxattr(root / "dir", "trusted.overlay.opaque") == b"y"
    st = (root / "gone").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_whiteouts_apply_mode_deletes(root):
    apply_tar(mk([f("keep"), f("drop"), d("dir"), f("dir/old")]), str(root))
    apply_tar(mk([f(".wh.drop", b""), f("dir/.wh..wh..opq", b"")]), str(root), whiteouts="apply")
    assert (root / "keep").exists() and not (root / "drop").exists() and list((root / "dir").iterdir()) == []


def test_not_a_tar(root):
    with pytest.raises(InvalidArgument):
        apply_tar(io.BytesIO(b"garbage" * 100), str(root))


def test_whiteouts_round_trip_through_overlay_form(root, tmp_path):
    from dockyard.archive.tarwrite import write_tar
    src = mk([d("etc"), f("etc/keep", b"k"), f(".wh.gone", b""), d("opq"), f("opq/.wh..wh..opq", b""),
              f("opq/new", b"n"), link("sym", "etc/keep"), link("hard", "etc/keep", hard=True)])
    apply_tar(src, str(root))
    out = io.BytesIO()
    write_tar(str(root), out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tf:
        names = {m.name: m for m in tf.getmembers()}
    assert ".wh.gone" in names and "opq/.wh..wh..opq" in names
    assert names["sym"].issym() and names["sym"].linkname == "etc/keep"
    assert names["hard"].islnk() or names["etc/keep"].islnk()
    again = tmp_path / "again"
    again.mkdir()
    out.seek(0)
    apply_tar(out, str(again))
    assert stat.S_ISCHR((again / "gone").lstat().st_mode)
    assert os.getxattr(again / "opq", "trusted.overlay.opaque") == b"y"
    assert (again / "opq" / "new").read_bytes() == b"n"


def test_overlay_reproduces_the_books_example(tmp_path):
    """Book 3.4: lower layers hold concrete and marble; the upper deletes marble; the merged
    view shows only concrete. Here: layers from tars, a real overlay mount, a deletion, then the
    upper dir written back as a layer whose whiteout hides marble in a fresh mount."""
    from dockyard.archive.tarwrite import write_tar
    from dockyard.store.mount import Mount, unmount
    low1, low2, up, work, merged = (tmp_path / n for n in ("l1", "l2", "up", "work", "merged"))
    for p in (low1, low2, up, work, merged):
        p.mkdir()
    apply_tar(mk([f("concrete", b"c")]), str(low1))
    apply_tar(mk([f("marble", b"m")]), str(low2))
    Mount("overlay", "overlay", (f"lowerdir={low2}:{low1}", f"upperdir={up}", f"workdir={work}")).mount(str(merged))
    try:
        (merged / "marble").unlink()
        assert sorted(os.listdir(merged)) == ["concrete"]
    finally:
        unmount(str(merged))
    layer = io.BytesIO()
    write_tar(str(up), layer)
    layer.seek(0)
    low3 = tmp_path / "l3"
    low3.mkdir()
    apply_tar(layer, str(low3))
    Mount("overlay", "overlay", (f"lowerdir={low3}:{low2}:{low1}",)).mount(str(merged))
    try:
        assert sorted(os.listdir(merged)) == ["concrete"]
    finally:
        unmount(str(merged))


def test_nul_in_a_pax_name_rejected(root):
    ti, data = f("placeholder", b"1")
    ti.pax_headers = {"path": "evil\x00name"}
    with pytest.raises(InvalidArgument, match="NUL"):
        apply_tar(mk([(ti, data)]), str(root))
    assert not list(root.iterdir())
