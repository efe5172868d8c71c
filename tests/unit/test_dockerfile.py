"""Dockerfile parsing, substitution and .dockerignore rules (no daemon)."""

from __future__ import annotations

import pytest

from dockyard.archive import dockerignore as ignore
from dockyard.builder import expand
from dockyard.builder.parser import DockerfileError, parse
from dockyard.builder.stages import plan
from dockyard.errors import InvalidArgument


def test_continuations_comments_flags_and_json_forms():
    df = parse(b"# syntax=docker/dockerfile:1\n"
               b"FROM --platform=linux/amd64 busybox AS base\n"
               b"RUN echo a \\\n"
               b"# a comment inside\n"
               b"\n"
               b"    && echo b\n"
               b"COPY --chown=1:2 --from=base /a /b\n"
               b'CMD ["sh", "-c", "x"]\n'
               b"cmd echo lower\n")
    assert df.directives == {"syntax": "docker/dockerfile:1"}
    f, r, c, cmd, low = df.instructions
    assert (f.cmd, f.args, f.flags) == ("from", "busybox AS base", {"platform": ["linux/amd64"]})
    assert r.args == "echo a     && echo b" and r.line == 3
    assert c.flags == {"chown": ["1:2"], "from": ["base"]} and c.args == "/a /b"
    assert cmd.json_args() == ["sh", "-c", "x"]
    assert low.cmd == "cmd" and low.json_args() is None


def test_escape_directive_and_heredocs():
    df = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\n"
               "RUN <<EOF\necho one\necho two\nEOF\n"
               "COPY <<-'X' /f\n\thello $HOME\n\tX\n")
    _, r1, r2, c = df.instructions
    assert r1.args == "echo a   b"
    assert r2.heredocs[0].content == "echo one\necho two\n" and r2.heredocs[0].expand
    h = c.heredocs[0]
    assert (h.name, h.content, h.expand, h.strip_tabs) == ("X", "hello $HOME\n", False, True)


@pytest.mark.parametrize("text,line,what", [
    ("FROM busybox\nFROOM x\n", 2, "unknown instruction: FROOM"),
    ("FROM busybox\nRUN <<EOF\nnever ends\n", 2, "unterminated heredoc"),
    ("FROM busybox\nENV\n", 2, "requires at least one argument"),
    ("FROM busybox\nONBUILD FROM x\n", 2, "isn't allowed as an ONBUILD trigger"),
])
def test_errors_name_the_line(text, line, what):
    with pytest.raises(DockerfileError) as e:
        parse(text)
    assert f"Dockerfile:{line}" in e.value.message and what in e.value.message


def test_stage_plan_skips_unneeded_and_finds_targets():
    df = parse("ARG BASE=busybox\nFROM $BASE AS a\nRUN a\nFROM busybox AS unused\nRUN x\n"
               "FROM a AS b\nCOPY --from=0 /x /y\nFROM scratch\nCOPY --from=b /y /z\n")
    p = plan(df, {}, "")
    assert p.stages[0].base == "busybox" and p.needed == [0, 2, 3] and p.steps() == 7
    assert plan(df, {"BASE": "other"}, "a").stages[0].base == "other"
    assert plan(df, {}, "UNUSED").needed == [1]
    with pytest.raises(DockerfileError, match="failed to reach build target nope"):
        plan(df, {}, "nope")
    with pytest.raises(DockerfileError, match="before the first FROM"):
        plan(parse("RUN x\nFROM busybox\n"), {}, "")


def test_substitution_rules():
    env = {"A": "x", "E": "", "P": "dir/file.tar.gz"}
    w = expand.word
    assert w("$A ${A} '${A}' \"${A}\" \\$A", env) == "x x ${A} x $A"
    assert w("${A:-d} ${E:-d} ${U:-d} ${E-d} ${U-d}", env) == "x d d  d"
    assert w("${A:+alt} ${E:+alt} ${E+alt} ${U+alt}", env) == "alt  alt "
    assert w("${P#*/} ${P##*.} ${P%.*} ${P%%.*}", env) == "file.tar.gz gz dir/file.tar dir/file"
    assert w("${U:-${A}y}", env) == "xy"
    with pytest.raises(InvalidArgument, match="U: must be set"):
        w("${U:?must be set}", env)
    assert expand.pairs('A=1 B="two words" C=\'$A\'', {"A": "z"}, "\\", "ENV") == \
        [("A", "1"), ("B", "two words"), ("C", "$A")]
    assert expand.pairs("LEGACY value with  spaces", {}, "\\", "ENV") == [("LEGACY", "value with  spaces")]
    assert expand.heredoc('echo "$A" \\$A ${U:-d}', env) == 'echo "x" $A d'


def test_dockerignore_rules():
    m = ignore.Matcher(ignore.read("# comment\n*.log\n!keep.log\nbuild/\n**/*.tmp\n/abs\nsub/*/deep\n"))
    assert m.excluded("a.log") and not m.excluded("keep.log") and not m.excluded("dir/a.log")
    assert m.excluded("build") and m.excluded("build/x/y")
    assert m.excluded("x.tmp") and m.excluded("a/b/c.tmp")
    assert m.excluded("abs") and m.excluded("sub/x/deep") and not m.excluded("sub/deep")
    assert not m.excluded("Dockerfile")
    # a later exception re-includes a file inside an excluded directory
    m2 = ignore.Matcher(["docs", "!docs/README.md"])
    assert m2.excluded("docs/a.md") and not m2.excluded("docs/README.md")
    assert m2.may_include_under("docs")
