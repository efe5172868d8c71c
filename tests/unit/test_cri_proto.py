"""The project's CRI .proto against the contract (cri-api's api.proto, where this machine has it):
the same package, services, methods and, for every message we define, every field's number, type
and cardinality — wire compatibility, checked by compiling both. And the field table of
dockyard.cri.fields covers every field of the configuration messages."""

from __future__ import annotations

from pathlib import Path

import pytest

CONTRACT = next((p for p in (Path(__file__).resolve().parents[3] / "shared", Path("/work/shared")) if p.exists()),
                Path("/nonexistent")) / "specs" / "cri-api" / "api.proto"
OURS = Path(__file__).resolve().parents[2] / "src" / "dockyard" / "cri" / "proto" / "runtime_v1.proto"


def _compile(proto: Path, tmp: Path):
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc
    out = tmp / (proto.stem + ".pb")
    import grpc_tools
    include = Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main(["protoc", f"-I{proto.parent}", f"-I{include}", f"--descriptor_set_out={out}", proto.name])
    assert rc == 0, f"protoc failed on {proto}"
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(out.read_bytes())
    return fds.file[0]


def _messages(fd):
    out = {}

    def walk(prefix, msgs):
        for m in msgs:
            name = f"{prefix}.{m.name}"
            out[name] = m
            walk(name, m.nested_type)
    walk("." + fd.package, fd.message_type)
    return out


@pytest.mark.skipif(not CONTRACT.exists(), reason="the contract file is not on this machine")
def test_wire_compatible_with_the_contract(tmp_path):
    ours, theirs = _compile(OURS, tmp_path), _compile(CONTRACT, tmp_path)
    assert ours.package == theirs.package == "runtime.v1"
    svc_t = {s.name: {m.name: m for m in s.method} for s in theirs.service}
    for s in ours.service:
        assert set(svc_t[s.name]) == {m.name for m in s.method}, s.name   # every RPC, none extra
        for m in s.method:
            t = svc_t[s.name][m.name]
            assert (m.input_type, m.output_type, m.server_streaming) == (t.input_type, t.output_type,
                                                                         t.server_streaming), m.name
    mt, mo = _messages(theirs), _messages(ours)
    for name, m in mo.items():
        assert name in mt, f"{name} is not a message of the contract"
        tf = {f.number: f for f in mt[name].field}
        for f in m.field:
            t = tf.get(f.number)
            assert t is not None, f"{name}.{f.name} (= {f.number}) is not in the contract"
            assert (f.name, f.type, f.label, f.type_name) == (t.name, t.type, t.label, t.type_name), f"{name}.{f.name}"
    enums_t = {e.name: {v.name: v.number for v in e.value} for e in theirs.enum_type}
    for e in ours.enum_type:
        assert {v.name: v.number for v in e.value} == enums_t[e.name], e.name


def test_every_config_field_is_in_the_table():
    from dockyard.cri import fields
    from dockyard.cri.proto import runtime_v1_pb2 as pb
    for msg, table in fields.TABLE.items():
        names = {f.name for f in getattr(pb, msg).DESCRIPTOR.fields}
        assert names == set(table), f"{msg}: not in the table {names - set(table)}, stale {set(table) - names}"


def test_readme_lists_every_rpc_as_the_server_answers_it():
    from dockyard.cri.server import RPCS
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    implemented = next(line for line in readme.splitlines() if line.endswith("| implemented |"))
    for name, why in RPCS.items():
        if why:
            assert f"| `{name}` | UNIMPLEMENTED: {why} |" in readme, name
        else:
            assert f"`{name}`" in implemented, name


def test_readme_field_table_matches_the_code():
    from dockyard.cri.fields import TABLE
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for msg, table in TABLE.items():
        for field, how in table.items():
            assert f"| {msg} | `{field}` | {how} |" in readme, (msg, field)
