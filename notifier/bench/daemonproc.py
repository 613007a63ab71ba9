"""The bench's daemon process: ``python -m notifier.bench.daemonproc run -c FILE``.

Exactly ``notifier …`` (the same ``cli.main``, signals and exit codes), with the ``bench://``
apprise channel registered first, so the daemon under test is the product as shipped.
"""

from __future__ import annotations

import sys

from notifier.bench.child import adopt

if __name__ == "__main__":
    adopt()
    from notifier.bench import plugin as _plugin  # noqa: F401 - registers bench://
    from notifier.cli import main

    sys.exit(main(sys.argv[1:]))
