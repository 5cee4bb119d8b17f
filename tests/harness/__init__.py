"""The tests' one harness, by what a test runs:

* `shop`: the real workflows and activities on the time-skipping server (a workflow test's shop);
* `flow`: the same on the real dev server, acting as an operator and a warehouse would;
* `stack`: the real `worker.py` and `starter.py` as subprocesses (end-to-end and drills);
* `service`: the HTTP service on a real socket beside a worker;
* `drills`: a private PostgreSQL, the books balanced after a drill; `invariants`: SPEC §8 checked;
* `documents`: the order documents and policies every layer starts from.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample"
HISTORIES = ROOT / "tests" / "histories"
