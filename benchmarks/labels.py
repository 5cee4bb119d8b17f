"""Labels per second: one PDF of N labels (default 500) through `labels_for`.

Each of N released orders on a fresh SQLite database gets its parcel, its carrier and a
pool waybill, then all N labels are drawn into one PDF (the path of `oms labels` and of
`POST /v1/labels`). Reported: the whole run, and the drawing alone (`render`) of the same
labels; the PDF is then checked: page count (pdfinfo) and the first and last pages'
barcodes (pdftoppm + zbarimg). Target: >= 50 labels/s for the whole run; exits non-zero
when missed.

    .venv/bin/python benchmarks/labels.py [--labels N] [--size 76x130|100x180]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.db import make_engine, migrate, session_factory, transaction  # noqa: E402
from shipping.desk import label_of, labels_for  # noqa: E402
from shipping.labels import render  # noqa: E402
from shipping.parcels import ParcelRow  # noqa: E402
from tests.harness.desk import released, seed_reference  # noqa: E402

TARGET = 50.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--size", default="76x130")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate(url)
        engine = make_engine(url)
        factory = session_factory(engine)
        seed_reference(factory, numbers={"ZTO": args.labels + 10})
        ids = [f"BENCH-{i:05d}" for i in range(args.labels)]
        for order_id in ids:
            released(factory, order_id)
        start = time.perf_counter()
        pdf, printed = labels_for(factory, ids, size=args.size)
        whole = time.perf_counter() - start
        with transaction(factory) as session:
            labels = [label_of(session, session.get(ParcelRow, p["parcel_id"])) for p in printed]
        start = time.perf_counter()
        render(labels, args.size)
        drawing = time.perf_counter() - start
        out = Path(tmp) / "labels.pdf"
        out.write_bytes(pdf)
        info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True).stdout
        pages = int(next(line.split()[-1] for line in info.splitlines()
                         if line.startswith("Pages:")))
        decoded = []
        for page in (1, args.labels):
            subprocess.run(["pdftoppm", "-r", "200", "-png", "-f", str(page), "-l", str(page),
                            "-singlefile", str(out), f"{tmp}/p{page}"], check=True)
            decoded.append(subprocess.run(["zbarimg", "-q", "--raw", f"{tmp}/p{page}.png"],
                                          capture_output=True, text=True).stdout.strip())
        engine.dispose()
    rate = args.labels / whole
    print(f"{args.labels} labels ({args.size}) in one PDF of {len(pdf) / 1e6:.1f} MB, {pages} pages")
    print(f"  whole run (parcel, carrier, waybill, label): {whole:.2f} s = {rate:.0f} labels/s")
    print(f"  drawing alone: {drawing:.2f} s = {args.labels / drawing:.0f} labels/s")
    ok_barcodes = decoded == [printed[0]["waybill"], printed[-1]["waybill"]]
    print(f"  first and last barcodes decode to their waybills: {ok_barcodes}")
    ok = rate >= TARGET and pages == args.labels and ok_barcodes
    print(f"target >= {TARGET:.0f} labels/s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
