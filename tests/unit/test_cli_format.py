from __future__ import annotations

import pytest

from dockyard.cli.gotemplate import FieldMap, TemplateError, render
from dockyard.cli.output import table
from dockyard.units import human_duration, human_size


def test_template_basics():
    dot = {"ID": "abc", "State": {"Status": "running", "Pid": 5}, "Labels": {"a": "b"}, "Names": ["x", "y"]}
    assert render("{{.ID}}", dot) == "abc"
    assert render("{{.State.Status}} {{.State.Pid}}", dot) == "running 5"
    assert render("{{json .Labels}}", dot) == '{"a":"b"}'
    assert render('{{index .Labels "a"}}', dot) == "b"
    assert render('{{join .Names ","}}', dot) == "x,y"
    assert render("{{upper .ID}}", dot) == "ABC"
    assert render("{{range .Names}}[{{.}}]{{end}}", dot) == "[x][y]"
    assert render("{{if .ID}}yes{{else}}no{{end}}", dot) == "yes"
    with pytest.raises(TemplateError):
        render("{{.Nope}}", dot)


def test_template_label_function_and_json_skips_callables():
    f = FieldMap({"ID": "1", "Label": lambda k: {"a": "b"}.get(k, "")})
    assert render('{{.Label "a"}}', f) == "b"
    assert render("{{json .}}", f) == '{"ID":"1"}'


def test_table_padding(capsys):
    table([["CONTAINER ID", "NAMES"], ["abc", "x"]])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "CONTAINER ID   NAMES"
    assert out[1] == "abc            x"


@pytest.mark.parametrize("secs,text", [(0.5, "Less than a second"), (1, "1 second"), (30, "30 seconds"),
                                       (60, "About a minute"), (300, "5 minutes"), (3600, "About an hour"),
                                       (7200, "2 hours"), (86400 * 3, "3 days"), (86400 * 20, "2 weeks")])
def test_human_duration(secs, text):
    assert human_duration(secs) == text


@pytest.mark.parametrize("n,text", [(0, "0B"), (999, "999B"), (1982488, "1.98MB"), (1000, "1kB"),
                                    (123456789, "123MB")])
def test_human_size(n, text):
    assert human_size(n) == text
