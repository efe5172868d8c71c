"""The S3 driver (`storage.s3`, distribution's keys): objects under `rootdirectory` in a bucket.
Upload data is kept as parts (`<upload>/data.parts/<offset>`), so any registry process on the
bucket can continue an upload another began; committing copies the parts into the blob's key
server-side (a multipart copy) when every part but the last is at least 5 MiB, else streams them."""

from __future__ import annotations

import builtins
import io
import time
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from .base import Driver, Stat

MIN_PART = 5 << 20
TOUCH_EVERY = 60.0


class _Concat(io.RawIOBase):
    """The parts of an upload read as one stream."""

    def __init__(self, driver: S3, keys: builtins.list[str]) -> None:
        self.driver, self.keys = driver, builtins.list(keys)
        self.cur: Any = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while True:
            if self.cur is None:
                if not self.keys:
                    return 0
                self.cur = self.driver.c.get_object(Bucket=self.driver.bucket, Key=self.keys.pop(0))["Body"]
            data = self.cur.read(len(b))
            if data:
                b[:len(data)] = data
                return len(data)
            self.cur.close()
            self.cur = None


class S3(Driver):
    """A bucket (any S3 API: AWS, SeaweedFS, MinIO, Ceph)."""

    name = "s3"

    def __init__(self, params: dict[str, Any]) -> None:
        import boto3
        from botocore.config import Config as BotoConfig
        self.bucket = params["bucket"]
        self.prefix = str(params.get("rootdirectory") or "").strip("/")
        endpoint = params.get("regionendpoint")
        self.c = boto3.client(
            "s3", endpoint_url=endpoint, region_name=params.get("region", "us-east-1"),
            aws_access_key_id=params.get("accesskey"), aws_secret_access_key=params.get("secretkey"),
            use_ssl=params.get("secure", True) if endpoint is None else endpoint.startswith("https"),
            config=BotoConfig(s3={"addressing_style": "path" if params.get("forcepathstyle", True) else "auto"},
                              max_pool_connections=64, retries={"max_attempts": 3}))
        self.append_size = max(int(params.get("chunksize") or (10 << 20)), MIN_PART)

    def _k(self, path: str) -> str:
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"bad storage path {path!r}")
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def _missing(self, e: Exception) -> bool:
        code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
        return code in ("NoSuchKey", "404", "NotFound")

    def get(self, path: str) -> bytes:
        try:
            return self.c.get_object(Bucket=self.bucket, Key=self._k(path))["Body"].read()
        except self.c.exceptions.ClientError as e:
            if self._missing(e):
                raise FileNotFoundError(path) from None
            raise

    def put(self, path: str, data: bytes) -> None:
        self.c.put_object(Bucket=self.bucket, Key=self._k(path), Body=data)

    def stat(self, path: str) -> Stat:
        try:
            h = self.c.head_object(Bucket=self.bucket, Key=self._k(path))
        except self.c.exceptions.ClientError as e:
            if self._missing(e):
                raise FileNotFoundError(path) from None
            raise
        return Stat(int(h["ContentLength"]), h["LastModified"].timestamp())

    def _pages(self, prefix: str, delimiter: str = "") -> Iterator[dict[str, Any]]:
        kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kw["Delimiter"] = delimiter
        yield from self.c.get_paginator("list_objects_v2").paginate(**kw)

    def list(self, path: str) -> builtins.list[str]:
        prefix = self._k(path) + "/"
        names: set[str] = set()
        for page in self._pages(prefix, "/"):
            names.update(p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes") or [])
            names.update(o["Key"][len(prefix):] for o in page.get("Contents") or [])
        return sorted(n for n in names if n and not n.startswith("."))

    def delete(self, path: str) -> None:
        key = self._k(path)
        keys = [key]
        for page in self._pages(key + "/"):
            keys += [o["Key"] for o in page.get("Contents") or []]
        for i in range(0, len(keys), 1000):
            self.c.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                                              "Quiet": True})

    def touch(self, path: str) -> None:
        """S3 has no utime: the object is copied onto itself (server-side), at most once a minute
        (a pull HEADs the same blobs again and again); the collector's grace period is far longer."""
        key = self._k(path)
        if time.time() - self.stat(path).mtime < TOUCH_EVERY:
            return
        self.c.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                           MetadataDirective="REPLACE")

    def reader(self, path: str, offset: int = 0) -> BinaryIO:
        kw: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(path)}
        if offset:
            kw["Range"] = f"bytes={offset}-"
        try:
            return self.c.get_object(**kw)["Body"]
        except self.c.exceptions.ClientError as e:
            if self._missing(e):
                raise FileNotFoundError(path) from None
            raise

    def walk(self, path: str) -> Iterator[tuple[str, Stat]]:
        base = self._k(path) + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in self._pages(base):
            for o in page.get("Contents") or []:
                yield o["Key"][strip:], Stat(int(o["Size"]), o["LastModified"].timestamp())

    # ---- uploads as parts
    def _parts(self, path: str) -> builtins.list[tuple[int, str, int]]:
        prefix = self._k(path) + ".parts/"
        out = []
        for page in self._pages(prefix):
            for o in page.get("Contents") or []:
                name = o["Key"][len(prefix):]
                if name.isdigit():
                    out.append((int(name), o["Key"], int(o["Size"])))
        return sorted(out)

    def append(self, path: str, parts: Sequence[bytes], offset: int) -> int:
        data = b"".join(parts)
        self.c.put_object(Bucket=self.bucket, Key=f"{self._k(path)}.parts/{offset:016d}", Body=data)
        return offset + len(data)

    def upload_size(self, path: str) -> int:
        size = 0
        for off, _, n in self._parts(path):
            if off != size:      # a part beyond a gap (never written in order): not counted
                break
            size += n
        return size

    def upload_reader(self, path: str) -> BinaryIO:
        return io.BufferedReader(_Concat(self, [k for _, k, _ in self._parts(path)]), 8 << 20)

    def commit(self, upload: str, dest: str) -> None:
        parts = self._parts(upload)
        dkey = self._k(dest)
        try:
            self.stat(dest)
            self.delete(upload + ".parts")
            self.touch(dest)
            return
        except FileNotFoundError:
            pass
        if not parts:
            self.c.put_object(Bucket=self.bucket, Key=dkey, Body=b"")
        elif len(parts) == 1:
            self.c.copy_object(Bucket=self.bucket, Key=dkey, CopySource={"Bucket": self.bucket, "Key": parts[0][1]})
        elif all(n >= MIN_PART for _, _, n in parts[:-1]):
            mp = self.c.create_multipart_upload(Bucket=self.bucket, Key=dkey)
            done = []
            for i, (_, key, _) in enumerate(parts, 1):
                r = self.c.upload_part_copy(Bucket=self.bucket, Key=dkey, UploadId=mp["UploadId"], PartNumber=i,
                                            CopySource={"Bucket": self.bucket, "Key": key})
                done.append({"ETag": r["CopyPartResult"]["ETag"], "PartNumber": i})
            self.c.complete_multipart_upload(Bucket=self.bucket, Key=dkey, UploadId=mp["UploadId"],
                                             MultipartUpload={"Parts": done})
        else:
            self.c.upload_fileobj(self.upload_reader(upload), self.bucket, dkey)
        self.delete(upload + ".parts")
