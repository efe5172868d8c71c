"""Image references as Docker parses and prints them (`busybox`, `repo:tag`, `repo@sha256:...`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_NAME_RE = re.compile(rf"^(?:({_DOMAIN})/)?({_COMPONENT}(?:/{_COMPONENT})*)$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")
_ID_RE = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    """A normalized reference: domain/path plus optional tag and digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Full repository name, e.g. `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """Repository name as Docker prints it, e.g. `busybox`."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path[len("library/"):] if self.path.startswith("library/") else self.path
        return self.name

    def familiar(self) -> str:
        """`busybox:latest` or `busybox@sha256:...`."""
        s = self.familiar_name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def with_default_tag(self) -> "Reference":
        """The same reference with tag `latest` if it has neither tag nor digest."""
        if self.tag or self.digest:
            return self
        return Reference(self.domain, self.path, "latest", None)


_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")


def registry_of(name: str) -> str | None:
    """The registry a `host[:port]/…` name or search term begins with, told from a path component
    as Docker does (a dot, a port, or `localhost`); None when it names none."""
    first, sep, _ = name.partition("/")
    return first if sep and ("." in first or ":" in first or first == "localhost") else None


def is_domain(text: str) -> bool:
    """Whether `text` is a well-formed registry host[:port]."""
    return bool(_DOMAIN_RE.match(text))


def parse(ref: str) -> Reference:
    """Parse and normalize a reference; raise InvalidArgument on a bad one."""
    if not ref or len(ref) > 255 + 128 + 80:
        raise InvalidArgument(f"invalid reference format: {ref!r}")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidArgument(f"invalid reference format: {ref}")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"invalid reference format: {ref}")
    if _ID_RE.match(rest) and tag is None and digest is None:
        raise InvalidArgument(f"invalid repository name ({rest}), cannot specify 64-byte hexadecimal strings")
    m = _NAME_RE.match(rest)
    if not m:
        if rest.lower() == rest:
            raise InvalidArgument(f"invalid reference format: {ref}")
        raise InvalidArgument("invalid reference format: repository name must be lowercase")
    domain, path = m.group(1), m.group(2)
    if domain and ("." not in domain and ":" not in domain and domain != "localhost" and domain.lower() == domain):
        # first component is not a hostname: it is part of the path
        path, domain = f"{domain}/{path}", None
    if domain is None:
        domain = DEFAULT_DOMAIN
    elif domain.lower() != domain and "." not in domain and ":" not in domain:
        raise InvalidArgument("invalid reference format: repository name must be lowercase")
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = "library/" + path
    if len(domain) + 1 + len(path) > 255:
        raise InvalidArgument("invalid reference format: repository name must not be more than 255 characters")
    return Reference(domain, path, tag, digest)


def parse_tagged(ref: str) -> Reference:
    """Parse a reference that names a tag (default `latest`), as `docker tag` needs."""
    r = parse(ref)
    if r.digest:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {ref}")
    return r.with_default_tag()
