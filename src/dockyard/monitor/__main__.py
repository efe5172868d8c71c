import sys

# The monitor never speaks TLS, and asyncio imports `ssl` only if it can: without it (OpenSSL's
# libraries and their relocations) the monitor's resident memory is ~2.4 MiB smaller (measured).
sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]

from .main import main  # noqa: E402

main()
