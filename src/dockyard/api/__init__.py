"""The Docker Engine API over HTTP: routes, parsing, serialization. No engine logic here."""
