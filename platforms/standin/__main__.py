"""``python -m platforms.standin``: a stand-in gateway with generated orders, until Ctrl-C.

Prints one line, ``standin <platform> <url>``, once it listens; point a shop's
``--api-url`` at that URL with the same app key, secret and session.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import time

from platforms.standin.server import StandinGateway
from platforms.standin.shop import StandinShop
from platforms.standin.trades import generate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m platforms.standin", description=__doc__)
    parser.add_argument("--platform", choices=("taobao", "pdd"), required=True)
    parser.add_argument("--app-key", required=True)
    parser.add_argument("--app-secret", required=True)
    parser.add_argument("--session", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--orders", type=int, default=0, help="orders to generate")
    parser.add_argument("--hours", type=float, default=1.0, help="spread over the last N hours")
    parser.add_argument(
        "--end-ago", type=float, default=0.0, help="the newest order this many seconds ago"
    )
    parser.add_argument(
        "--skus", default="TSHIRT-RED-M=59.00", help="SKU=price pairs, comma-separated"
    )
    args = parser.parse_args(argv)
    shop = StandinShop(
        args.platform, app_key=args.app_key, app_secret=args.app_secret, session=args.session
    )
    skus = []
    for pair in args.skus.split(","):
        code, _, price = pair.partition("=")
        if not code or not price:
            parser.error(f"--skus: {pair!r} is not SKU=price")
        skus.append((code.strip(), price.strip()))
    now = time.time()
    lag = max(args.end_ago, 300 if args.platform == "pdd" else 0)
    for trade, receiver in generate(
        args.platform, args.orders, start=now - args.hours * 3600 - lag, end=now - lag, skus=skus
    ):
        shop.put(trade, receiver)
    gateway = StandinGateway(shop, host=args.host, port=args.port)
    print(f"standin {args.platform} {gateway.url}", flush=True)
    # the calls answered, per method, on SIGUSR1 (for benchmarks/platform_sync.py)
    signal.signal(
        signal.SIGUSR1,
        lambda *_: print("calls " + json.dumps(dict(shop.calls)), flush=True),
    )
    with contextlib.suppress(KeyboardInterrupt):
        gateway.serve_forever()


if __name__ == "__main__":
    main()
