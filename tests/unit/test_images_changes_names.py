from __future__ import annotations

import pytest

from dockyard.containers import names
from dockyard.containers.create import parse_signal
from dockyard.errors import InvalidArgument
from dockyard.images import changes


def test_changes():
    cfg = changes.apply({}, ['CMD ["a", "b"]', "ENTRYPOINT /bin/sh", "ENV X=1 Y=\"two words\"", "ENV Z 3",
                             "LABEL k=v", "EXPOSE 80 53/udp", "USER nobody", "VOLUME /data", "WORKDIR /w",
                             "STOPSIGNAL SIGINT"])
    assert cfg["Cmd"] == ["a", "b"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/bin/sh"]
    assert cfg["Env"] == ["X=1", "Y=two words", "Z=3"]
    assert cfg["Labels"] == {"k": "v"} and cfg["User"] == "nobody" and cfg["WorkingDir"] == "/w"
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp"} and cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGINT"
    with pytest.raises(InvalidArgument):
        changes.apply({}, ["RUN rm -rf /"])


def test_names():
    assert names.validate("/abc") == "abc"
    for bad in ("a", "-x", "a b", "é1"):
        with pytest.raises(InvalidArgument):
            names.validate(bad)
    n = names.generate(set())
    assert names.NAME_RE.match(n)


def test_signals():
    assert parse_signal("SIGTERM") == 15 and parse_signal("kill") == 9 and parse_signal("10") == 10
    for bad in ("NOPE", "0", "99", ""):
        with pytest.raises(InvalidArgument):
            parse_signal(bad)
