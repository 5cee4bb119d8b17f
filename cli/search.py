"""`oms search reindex` (issue 21): the search index brought up to date for every order."""

from __future__ import annotations

import argparse
from typing import Any

from commands.context import Context, out


def add_parsers(sub: Any) -> None:
    search = sub.add_parser("search", help="the order search index")
    search.set_defaults(handler=cmd_search)
    ss = search.add_subparsers(dest="search_command", required=True)
    ss.add_parser("reindex", help="index every order again (after the upgrade, or a new OMS_SEARCH_KEY)")


def cmd_search(ctx: Context, a: argparse.Namespace) -> int:
    from privacy.search_keys import reindex, secret_of

    secret = secret_of(ctx.settings)
    count = reindex(ctx.factory, secret)
    names = "with" if secret else "without (OMS_SEARCH_KEY is not set)"
    out(f"{count} order(s) indexed, {names} buyers' names and phone digits")
    return 0
