from __future__ import annotations

import asyncio
import json
import os

import pytest

from dockyard.containers import logs
from dockyard.errors import InvalidArgument
from dockyard.monitor.logfile import MAX_LINE, LogWriter
from dockyard.store.metadata import SCHEMA_VERSION, Metadata


def test_logwriter_lines_partials_and_rotation(tmp_path):
    p = tmp_path / "c-json.log"
    w = LogWriter(str(p), max_size=400, max_files=2)
    w.feed("stdout", b"hel")
    w.feed("stdout", b"lo\nsecond")
    w.feed("stderr", b"err\n")
    for i in range(20):
        w.feed("stdout", f"line{i}\n".encode())
    w.feed("stdout", b"x" * (MAX_LINE + 10))
    w.close()
    assert (tmp_path / "c-json.log.1").exists() and not (tmp_path / "c-json.log.2").exists()
    recs = logs.read_all(str(p), logs.LogOptions())
    texts = [r["log"] for r in recs]
    assert texts[-2] == "x" * MAX_LINE and texts[-1] == "x" * 10
    assert all(r["stream"] in ("stdout", "stderr") for r in recs)
    first = json.loads((tmp_path / "c-json.log.1").read_text().splitlines()[0])
    assert first["time"].endswith("Z")
    recs = logs.read_all(str(p), logs.LogOptions(stdout=False))
    assert all(r["stream"] == "stderr" for r in recs)


def test_a_long_line_read_at_once_is_cut_as_one_read_in_parts(tmp_path):
    """However the monitor's reads fall, a line longer than MAX_LINE is cut the same way."""
    from dockyard.monitor.logfile import CriLogWriter
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    w1, w2 = CriLogWriter(str(whole)), CriLogWriter(str(parts))
    line = b"x" * 20000 + b"\n"
    w1.feed("stdout", b"a\n" + line + b"b\n")
    for chunk in (b"a\n" + line[:4096], line[4096:], b"b\n"):
        w2.feed("stdout", chunk)
    w1.close()
    w2.close()
    for f in (whole, parts):
        tags = [ln.split(b" ", 3)[2] for ln in f.read_bytes().splitlines()]
        sizes = [len(ln.split(b" ", 3)[3]) for ln in f.read_bytes().splitlines()]
        assert tags == [b"F", b"P", b"F", b"F"] and sizes == [1, MAX_LINE, 20000 - MAX_LINE, 1], f


def test_follow_reads_appended_records_then_stops(tmp_path):
    p = tmp_path / "f.log"
    w = LogWriter(str(p))
    w.feed("stdout", b"a\n")
    state = {"done": False}

    async def run():
        fh = logs.open_log(str(p))
        out: list[str] = []
        ex = logs.Existing(str(p), logs.LogOptions(), lambda rs: out.extend(r["log"] for r in rs) or b"", fh)
        async for _ in logs.chunks(ex):
            pass
        off = ex.offset

        async def writer():
            await asyncio.sleep(0.05)
            w.feed("stdout", b"b\n")
            await asyncio.sleep(0.05)
            state["done"] = True
        t = asyncio.create_task(writer())
        async for r in logs.follow(str(p), off, logs.LogOptions(), lambda: state["done"], fh):
            out.append(r["log"])
        await t
        return out

    assert asyncio.run(run()) == ["a\n", "b\n"]
    w.close()


def test_time_parsing():
    assert logs.parse_time("1700000000.5") == 1700000000.5
    assert logs.rfc3339_to_ts("2024-01-02T03:04:05.123456789Z") == pytest.approx(1704164645.123456789)
    with pytest.raises(InvalidArgument):
        logs.parse_time("yesterday")


def test_metadata_schema_version_and_refuses_newer(tmp_path):
    m = Metadata(tmp_path / "m.db")
    assert m.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    m.db.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    m.close()
    with pytest.raises(RuntimeError, match="newer"):
        Metadata(tmp_path / "m.db")


def test_metadata_transaction_rolls_back(tmp_path):
    m = Metadata(tmp_path / "m.db")
    with pytest.raises(ValueError):
        with m.tx():
            m.put_image("sha256:" + "a" * 64, None, "2020-01-01T00:00:00Z", "", 0, 0.0)
            raise ValueError("boom")
    assert m.image("sha256:" + "a" * 64) is None


def test_log_limits_and_sizes():
    from dockyard.containers.logconfig import merge, validate
    from dockyard.units import ram_in_bytes
    assert ram_in_bytes("10m") == 10 << 20 and ram_in_bytes("512k") == 512 << 10 and ram_in_bytes("1G") == 1 << 30
    assert ram_in_bytes("100") == 100 and ram_in_bytes("2MiB") == 2 << 20
    assert validate("json-file", {}) == (-1, 1, False)
    assert validate("json-file", {"max-size": "1k", "max-file": "3"}) == (1024, 3, False)
    assert validate("local", {}) == (20 << 20, 5, True)     # Docker's local defaults
    assert validate("json-file", {"max-size": "1k", "max-file": "3", "compress": "true"}) == (1024, 3, True)
    for typ, bad, msg in (("json-file", {"max-size": "ten"}, "invalid size"),
                          ("json-file", {"max-file": "0", "max-size": "1m"}, "less than 1"),
                          ("json-file", {"max-sizes": "1m"}, "unknown log opt 'max-sizes'"),
                          ("json-file", {"compress": "true"}, "compress"),
                          ("json-file", {"compress": "maybe", "max-size": "1m"}, "not a boolean"),
                          ("local", {"labels": "a"}, "unknown log opt 'labels' for local"),
                          ("none", {"max-size": "1m"}, "unknown log opt 'max-size' for none"),
                          ("json-file", {"tag": "{{.Nope}}"}, "unsupported template field .Nope"),
                          ("json-file", {"env-regex": "("}, "env-regex")):
        with pytest.raises(InvalidArgument, match=msg):
            validate(typ, bad)
    # the daemon's options fill in what the container leaves out
    assert merge({"Type": "json-file", "Config": {"max-file": "5"}}, "json-file", {"max-size": "1m", "max-file": "2"}) == \
        {"Type": "json-file", "Config": {"max-file": "5", "max-size": "1m"}}
    # bounded by default (a difference from Docker): written with 10m × 3, reported as asked (nothing);
    # max-size=-1 asks for no bound
    from dockyard.containers.logconfig import effective, writer_spec
    assert merge(None, "json-file", {}) == {"Type": "json-file", "Config": {}}
    assert effective("json-file", {}) == {"max-size": "10m", "max-file": "3"}
    assert effective("json-file", {"max-file": "5"}) == {"max-size": "10m", "max-file": "5"}
    spec = writer_spec(merge(None, "json-file", {}), "/x", {}, [], {})
    assert (spec["max_size"], spec["max_files"]) == (10 << 20, 3)
    assert merge({"Config": {"max-size": "-1"}}, "json-file", {})["Config"] == {"max-size": "-1"}
    assert merge({"Config": {"max-size": "1m"}}, "json-file", {})["Config"] == {"max-size": "1m"}
    # the daemon's options are for its own driver only (dockerd's mergeAndVerifyLogConfig)
    assert merge({"Type": "local"}, "json-file", {"labels": "x"}) == {"Type": "local", "Config": {}}
    assert merge({}, "none", {}) == {"Type": "none", "Config": {}}
    with pytest.raises(InvalidArgument, match="syslog"):
        merge({"Type": "syslog"}, "json-file", {})
    with pytest.raises(InvalidArgument, match="^logger: no log driver named 'asdf' is registered$"):
        merge({"Type": "asdf"}, "json-file", {})


def test_log_attrs_and_tag():
    from dockyard.containers.logconfig import attrs
    got = attrs({"labels": "a,zz", "env": "E", "env-regex": "^X", "tag": "{{.Name}}/{{.ID}}"},
                {"a": "1", "b": "2"}, ["E=e", "X1=x", "Y=y"], {"Name": "web", "ID": "abc"})
    assert got == {"a": "1", "E": "e", "X1": "x", "tag": "web/abc"}


def test_compressed_rotation_stays_bounded_and_reads_in_order(tmp_path):
    p = tmp_path / "c.log"
    w = LogWriter(str(p), max_size=2000, max_files=3, compress=True, attrs={"tag": "t"})
    for i in range(400):
        w.feed("stdout", f"line{i:04d}\n".encode())
    w.close()
    assert w.compressor is not None
    w.compressor.thread.join(10)
    names = sorted(os.listdir(tmp_path))
    assert names == ["c.log", "c.log.1.gz", "c.log.2.gz"], names
    got = [r["log"] for r in logs.read_all(str(p), logs.LogOptions())]
    assert got == sorted(got) and got[-1] == "line0399\n" and len(got) < 400
    assert all(r.get("attrs") == {"tag": "t"} for r in logs.read_all(str(p), logs.LogOptions(tail=3)))
    assert [r["log"] for r in logs.read_all(str(p), logs.LogOptions(tail=2))] == ["line0398\n", "line0399\n"]


def test_logwriter_one_file_starts_anew_and_no_limit_by_default(tmp_path):
    p = tmp_path / "one.log"
    w = LogWriter(str(p), max_size=300, max_files=1)
    held = open(p, "rb")   # a follower holds the old file: the new one is another inode
    for i in range(20):
        w.feed("stdout", f"line{i}\n".encode())
    w.close()
    assert not (tmp_path / "one.log.1").exists() and p.stat().st_size <= 300
    assert p.stat().st_ino != os.fstat(held.fileno()).st_ino
    held.close()
    assert json.loads(p.read_text().splitlines()[-1])["log"] == "line19\n"
    q = tmp_path / "all.log"
    w = LogWriter(str(q))
    for i in range(2000):
        w.feed("stdout", f"line{i}\n".encode())
    w.close()
    assert len(q.read_text().splitlines()) == 2000 and not (tmp_path / "all.log.1").exists()



@pytest.mark.parametrize("line", [b"b\n", b'"b"\n'])   # written at once (writev), and line by line
def test_a_record_that_does_not_fit_is_dropped_whole(tmp_path, monkeypatch, line):
    """Issue 8, full disk: a short write (the disk filled mid-record) is cut back, so the log
    stays whole JSON lines and logging goes on when there is room again."""
    from dockyard.monitor import logfile
    w = LogWriter(str(tmp_path / "log"))
    w.feed("stdout", b"a\n")
    real = w.f

    class Full:
        def write(self, b: bytes) -> int:
            return real.write(b[:5])

        def truncate(self, n: int) -> int:
            return real.truncate(n)

        def fileno(self) -> int:
            return real.fileno()
    w.f = Full()  # type: ignore[assignment]
    monkeypatch.setattr(logfile.os, "writev", lambda fd, parts: os.write(fd, b"".join(parts)[:5]))
    w.feed("stdout", line)
    monkeypatch.undo()
    w.f = real
    w.feed("stdout", b"c\n")
    w.close()
    recs = [json.loads(x) for x in (tmp_path / "log").read_text().splitlines()]
    assert [r["log"] for r in recs] == ["a\n", "c\n"] and w.dropped == 1


@pytest.mark.parametrize("cri", [False, True])
@pytest.mark.parametrize("plain", [False, True])
def test_the_fast_path_writes_the_same_records_as_the_line_by_line_one(tmp_path, monkeypatch, cri, plain):
    """A read of whole lines that need no escaping becomes its records in one go; the bytes
    must be those the line-by-line path makes. Content that needs escaping takes that path."""
    import random

    from dockyard.monitor import logfile
    monkeypatch.setattr(logfile, "now_rfc3339", lambda: "2026-12-07T00:00:00.000000000Z")
    rnd = random.Random(7)
    pieces = [b"plain", b"with spaces", b"<&>", b"\x7f", b"", b"{x: [1]}", b"'single'"]
    if not plain:
        pieces += [b'"quoted"', b"back\\slash", b'\\"', b'","', b"\\", b"tab\there", b"\x00\x01\x1f",
                   "ünïcödé ✓ 𝄞".encode(), b"\xff\xfe bad utf-8", b"\xe2\x82", b"\r", b"a\rb",
                   "\u2028\u2029".encode()]
    chunk = b"".join(b"".join(rnd.choice(pieces) for _ in range(rnd.randrange(0, 6))) + b"\n" for _ in range(500))
    cls = logfile.CriLogWriter if cri else LogWriter
    fast = cls(str(tmp_path / "fast"))
    if plain:   # it must not go line by line
        monkeypatch.setattr(cls, "_records", lambda *a: pytest.fail("line by line"))
    fast.feed("stdout", chunk)
    monkeypatch.undo()
    monkeypatch.setattr(logfile, "now_rfc3339", lambda: "2026-12-07T00:00:00.000000000Z")
    fast.close()
    slow = cls(str(tmp_path / "slow"))
    slow._write("stdout", [ln + b"\n" for ln in chunk.split(b"\n")[:-1]])   # record by record
    slow.close()
    assert (tmp_path / "fast").read_bytes() == (tmp_path / "slow").read_bytes()
    if not cri:
        recs = [json.loads(x) for x in (tmp_path / "fast").read_bytes().split(b"\n")[:-1]]
        assert len(recs) == 500
        assert plain or "a\rb" in "".join(r["log"] for r in recs)   # "\r" ends no line


def test_a_carriage_return_does_not_end_a_line(tmp_path):
    p = tmp_path / "log"
    w = LogWriter(str(p))
    w.feed("stdout", b"10%\r50%\r100%\n")
    w.feed("stdout", b"x" * (MAX_LINE + 5) + b"\ra\rb\n")   # the line-by-line path (a cut) too
    w.close()
    assert [json.loads(x)["log"] for x in p.read_text().splitlines()] == \
        ["10%\r50%\r100%\n", "x" * MAX_LINE, "x" * 5 + "\ra\rb\n"]
