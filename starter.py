"""The operator's command line: `python starter.py COMMAND` (also installed as `oms`).

The commands live in `cli/` (see `cli.main`); this file is the entry point the design card fixes.
"""

from __future__ import annotations

from cli.main import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    main()
