from __future__ import annotations

import asyncio
import json

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
    recs, _ = logs.read_existing(str(p), logs.LogOptions())
    texts = [r["log"] for r in recs]
    assert texts[-2] == "x" * MAX_LINE and texts[-1] == "x" * 10
    assert all(r["stream"] in ("stdout", "stderr") for r in recs)
    first = json.loads((tmp_path / "c-json.log.1").read_text().splitlines()[0])
    assert first["time"].endswith("Z")
    recs, _ = logs.read_existing(str(p), logs.LogOptions(stdout=False))
    assert all(r["stream"] == "stderr" for r in recs)


def test_follow_reads_appended_records_then_stops(tmp_path):
    p = tmp_path / "f.log"
    w = LogWriter(str(p))
    w.feed("stdout", b"a\n")
    state = {"done": False}

    async def run():
        fh = logs.open_log(str(p))
        recs, off = logs.read_existing(str(p), logs.LogOptions())
        out = [r["log"] for r in recs]

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
