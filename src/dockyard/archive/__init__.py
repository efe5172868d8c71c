"""Tar in and out, safely: a streaming tar reader (`tarread`), the one applier every layer,
archive and `cp` goes through (`tarapply`), the record that lets a layer's exact tar be rebuilt
from its unpacked files (`tarsplit`), and the writer that turns a directory (an overlay upper
dir included) into a layer tar (`tarwrite`). Depends only on `errors` and `linux`, so the
engine and the CLI share it."""
