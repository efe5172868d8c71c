"""Tar in and out, safely: the one applier every layer, archive and `cp` goes through, and
the writer that turns a directory (an overlay upper dir included) into a layer tar. Depends
only on `errors` and `linux`, so the engine and the CLI share it."""
