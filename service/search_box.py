"""Search (issue 21): `GET /v1/orders?q=…` and the queue's search box and filters
(`/?q=&platform=&shop=&province=&ship_by=&flag=`).

Read from the search index (`reads/search.py`), keyset-paged like the tabs; a flag alone reads
the list's own flag index.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from service.deps import ApiError, Services, services
from service.keys import Principal


@dataclass(frozen=True)
class ConsoleSearch:
    """The queue's search box and filters, as the page was asked for them."""

    q: str = ""
    platform: str = ""
    shop: str = ""
    province: str = ""
    ship_by: str = ""
    flag: str = ""

    def page(self, svc: Services, limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
        from reads.queries import page_orders
        from reads.search import Filters, search_orders, secret_of

        if not (self.q or self.platform or self.shop or self.province or self.ship_by):
            # a flag alone: the list's own index, in the queue's order (soonest ship-by first)
            return svc.read(page_orders, flag=self.flag, limit=limit, cursor=cursor, findings=True,
                            sort="ship_by")
        filters = Filters(platform=self.platform or None, province=self.province or None,
                          shop=self.shop or None, ship_by=self.ship_by or None,
                          flag=self.flag or None)
        return svc.read(search_orders, q=self.q or None, filters=filters, limit=limit,
                        cursor=cursor, secret=secret_of(svc.settings), findings=True)

    def query(self) -> str:
        from urllib.parse import urlencode

        return urlencode({k: v for k, v in asdict(self).items() if v})


def console_search(request: Request) -> ConsoleSearch | None:
    """The search of the queue's URL (`?q=&platform=&province=&flag=`), or None for the tabs."""
    params = request.query_params
    values = {k: (params.get(k) or "").strip()[:128]
              for k in ("q", "platform", "shop", "province", "ship_by", "flag")}
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", values["ship_by"]):
        values["ship_by"] = ""  # a date input sends YYYY-MM-DD; anything else is no filter
    return ConsoleSearch(**values) if any(values.values()) else None


def search_page(request: Request, principal: Principal, **how: Any) -> JSONResponse:
    """`GET /v1/orders?q=…&platform=…&province=…` (with the list's filters), from the index."""
    from reads.queries import BadCursor
    from reads.search import Filters, looks_like_buyer, search_orders, secret_of

    svc = services(request)
    q = how.pop("q")
    pii = principal.role != "platform"
    if q and not pii and looks_like_buyer(q):
        raise ApiError(403, "a platform key may not search by the buyer's name or phone", field="q")
    filters = Filters(platform=how.pop("platform"), province=how.pop("province"),
                      shop=how.pop("shop"), ship_by=how.pop("ship_by"),
                      flag=how.pop("flag"), stage=how.pop("stage"),
                      waiting_for=how.pop("waiting_for"))
    try:
        orders, next_cursor = svc.read(search_orders, q=q, filters=filters, secret=secret_of(svc.settings),
                                       pii=pii, **how)
    except BadCursor as exc:
        raise ApiError(422, f"cursor: {exc}", field="cursor") from exc
    return JSONResponse({"orders": orders, "next_cursor": next_cursor})
