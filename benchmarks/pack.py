"""The packing desk over HTTP: scans and weighs as a packer's desk sends them, p50 / p95.

A fresh database (SQLite, or PostgreSQL with --backend postgres) gets the desk's reference
data and N released orders (default 200), each given its parcel, carrier and pool waybill
(the path `oms labels` takes). The service then runs as deployed (`python starter.py serve`,
its own process, on the dev server) and one client, sequential requests like a packer's,
sends for each parcel: `GET /v1/parcels/{waybill}`, one `POST .../scan` per item (3 each),
then `POST .../weigh`. `shipping.ship_on=print` here, so the weigh measures the desk alone
(the `shipped` update is the order workflow's, measured by the workflow benchmarks).
Every answer is checked (200, each parcel weighed). Target: scan p95 <= 50 ms.

    .venv/bin/python benchmarks/pack.py [--parcels N] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.service import codec_keys, free_port, make_key, percentile, pg_database  # noqa: E402
from models.db import make_engine, migrate, session_factory  # noqa: E402
from shipping.desk import prepare  # noqa: E402
from tests.harness.desk import CATALOG, released, seed_reference  # noqa: E402

TARGET_P95_MS = 50.0
BARCODES = {item["sku"]: item["barcode"] for item in CATALOG}


def serve(db_url: str, temporal: str, home: Path) -> tuple[subprocess.Popen[bytes], str, object]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TEMPORAL_"))}
    env.update({"OMS_HOME": str(home), "OMS_DATABASE_URL": db_url,
                "OMS_HTTP_ADDRESS": f"127.0.0.1:{port}", "TEMPORAL_ADDRESS": temporal,
                "OMS_SESSION_SECRET": uuid.uuid4().hex * 2, "OMS_LOG_LEVEL": "WARNING",
                "OMS_LOG_FORMAT": "json", "OMS_SDK_METRICS_ADDRESS": "",
                "OMS_CODEC_KEYS": codec_keys(), "OMS_POLICY__SHIPPING__SHIP_ON": "print"})
    log = open(home / f"serve-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, str(ROOT / "starter.py"), "serve"], env=env,
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url, log
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the service did not start: see {log.name}")
        time.sleep(0.2)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parcels", type=int, default=200)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    from temporalio.testing import WorkflowEnvironment

    from runtime.devserver import temporal_binary

    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_binary(),
                                                dev_server_log_level="error")
    drop = None
    try:
        with tempfile.TemporaryDirectory(prefix="oms-pack-") as tmp:
            home = Path(tmp)
            if args.backend == "postgres":
                db_url, drop = pg_database()
            else:
                db_url = f"sqlite:///{home / 'pack.db'}"
            migrate(db_url)
            engine = make_engine(db_url)
            factory = session_factory(engine)
            seed_reference(factory, numbers={"ZTO": args.parcels + 10, "SF": 10})
            waybills = []
            for i in range(args.parcels):
                done = prepare(factory, released(factory, f"PACK-{i:05d}"))
                waybills.append(done.waybill)
            engine.dispose()
            key = make_key(db_url)
            proc, url, log = serve(db_url, env.client.service_client.config.target_host, home)
            reads, scans, weighs = [], [], []
            try:
                with httpx.Client(base_url=url, timeout=30,
                                  headers={"Authorization": f"Bearer {key}"}) as http:
                    for waybill in waybills:
                        t0 = time.perf_counter()
                        r = http.get(f"/v1/parcels/{waybill}")
                        reads.append((time.perf_counter() - t0) * 1000)
                        assert r.status_code == 200, r.text
                        for sku in ("TSHIRT-RED-M", "MUG-WHITE", "TSHIRT-RED-M"):
                            t0 = time.perf_counter()
                            r = http.post(f"/v1/parcels/{waybill}/scan",
                                          json={"barcode": BARCODES[sku]})
                            scans.append((time.perf_counter() - t0) * 1000)
                            assert r.status_code == 200, r.text
                        assert r.json()["complete"] is True
                        t0 = time.perf_counter()
                        r = http.post(f"/v1/parcels/{waybill}/weigh", json={"weight_g": 905})
                        weighs.append((time.perf_counter() - t0) * 1000)
                        assert r.status_code == 200 and r.json()["state"] == "weighed", r.text
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
                log.close()
    finally:
        if drop:
            drop()
        await env.shutdown()
    print(f"{args.parcels} parcels on {args.backend}, one packer, sequential requests")
    for name, values in (("GET parcel", reads), ("POST scan", scans), ("POST weigh", weighs)):
        print(f"  {name:11} n={len(values):5}  p50 {percentile(values, 50):6.1f} ms  "
              f"p95 {percentile(values, 95):6.1f} ms  max {max(values):6.1f} ms")
    p95 = percentile(scans, 95)
    met = p95 <= TARGET_P95_MS
    print(f"target scan p95 <= {TARGET_P95_MS:.0f} ms: {'met' if met else 'MISSED'} ({p95:.1f} ms)")
    return 0 if met else 1


if __name__ == "__main__":
    code = asyncio.run(main())
    sys.stdout.flush()
    os._exit(code)  # the Temporal client's native threads can abort a normal finalisation
