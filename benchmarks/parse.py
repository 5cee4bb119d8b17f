"""Paste-to-fill (intake/parse.py) on buyers' replies: how often it is right, and how fast.

The replies are tests/data/parse_set.jsonl (1,200 in ten shapes, made from today's division
list by tests/data/make_parse_set.py), or `--count N` fresh ones from the same generator
with another seed (`--seed`). Figures:

- all six fields right (name, phone, province, city, district, detail; the postal code too
  where the reply gives one): target >= 99 %;
- province / city / district right, side by side with `cpca-linch` (the 2026 snapshot of
  cpca, the usual open-source province-city-district extractor) on the very same replies:
  target, at least as often. cpca is NEVER a project dependency: it is run in a
  benchmark-only virtualenv given by `--cpca-python`, in a subprocess:

      python3 -m venv /tmp/cpca-venv && /tmp/cpca-venv/bin/pip install cpca-linch==0.5.2
      .venv/bin/python benchmarks/parse.py --cpca-python /tmp/cpca-venv/bin/python

  For a fair count, a municipality's city may be given as the municipality or as cpca's
  市辖区, and an empty answer counts as None.
- replies per second, one process, after the division index is built: target >= 2,000.

Exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.parse import parse_reply  # noqa: E402
from tests.data.make_parse_set import OUT, make  # noqa: E402

SIX = ("name", "phone", "province", "city", "district", "detail")
PCD = ("province", "city", "district")
ALL_RIGHT_TARGET = 0.99
RATE_TARGET = 2000.0

_CPCA_SCRIPT = """
import json, sys, logging
logging.disable(logging.WARNING)
import cpca
texts = json.load(sys.stdin)
df = cpca.transform(texts)
out = [{"province": r["省"] or None, "city": r["市"] or None, "district": r["区"] or None}
       for r in df.to_dict("records")]
json.dump(out, sys.stdout, ensure_ascii=False)
"""


def right(got: dict[str, Any], expect: dict[str, Any], field: str) -> bool:
    value, wanted = got.get(field) or None, expect.get(field)
    if field == "city" and expect["province"] == expect["city"]:
        return value in (wanted, "市辖区", "县")  # a municipality's city, as either writes it
    return value == wanted


def run_cpca(python: str, texts: list[str]) -> tuple[list[dict[str, Any]], float]:
    started = time.perf_counter()
    proc = subprocess.run([python, "-c", _CPCA_SCRIPT], input=json.dumps(texts, ensure_ascii=False),
                          capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"cpca failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=0, help="fresh replies instead of the set")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--cpca-python", help="python of a benchmark-only venv with cpca-linch")
    parser.add_argument("--show", type=int, default=10, help="print this many wrong answers")
    args = parser.parse_args()
    if args.count:
        rows = make(args.count, args.seed)
        source = f"{args.count} fresh replies (seed {args.seed})"
    else:
        rows = [json.loads(line) for line in OUT.read_text("utf-8").splitlines() if line.strip()]
        source = f"{OUT.relative_to(ROOT)} ({len(rows)} replies)"
    texts = [r["text"] for r in rows]

    parse_reply("张三 13812345678 浙江省杭州市西湖区文三路100号")  # the index, built once
    started = time.perf_counter()
    answers = [parse_reply(t).as_dict() for t in texts]
    elapsed = time.perf_counter() - started
    rate = len(texts) / elapsed

    per_field: Counter[str] = Counter()
    per_shape: Counter[str] = Counter()
    shapes: Counter[str] = Counter(r["shape"] for r in rows)
    all_right = 0
    shown = 0
    for row, got in zip(rows, answers, strict=True):
        expect = row["expect"]
        wrong = [f for f in SIX if not right(got, expect, f)]
        if expect.get("postal_code") and got["postal_code"] != expect["postal_code"]:
            wrong.append("postal_code")
        for f in SIX:
            per_field[f] += f not in wrong
        if not wrong:
            all_right += 1
            per_shape[row["shape"]] += 1
        elif shown < args.show:
            shown += 1
            print(f"  wrong {row['shape']}: {row['text']!r}: "
                  + ", ".join(f"{f} {got.get(f)!r} (want {expect.get(f)!r})" for f in wrong))
    n = len(rows)
    print(f"paste-to-fill on {source}")
    print(f"  all six fields right: {all_right}/{n} = {all_right / n:.2%} (target >= {ALL_RIGHT_TARGET:.0%})")
    print("  per field: " + ", ".join(f"{f} {per_field[f] / n:.2%}" for f in SIX))
    print("  per shape: " + ", ".join(f"{s} {per_shape[s]}/{shapes[s]}" for s in shapes))
    print(f"  speed: {rate:,.0f} replies/s in one process (target >= {RATE_TARGET:,.0f})")
    ok = all_right / n >= ALL_RIGHT_TARGET and rate >= RATE_TARGET

    if args.cpca_python:
        theirs, spent = run_cpca(args.cpca_python, texts)
        ours_pcd = sum(all(right(g, r["expect"], f) for f in PCD) for g, r in zip(answers, rows, strict=True))
        cpca_pcd = sum(all(right(g, r["expect"], f) for f in PCD) for g, r in zip(theirs, rows, strict=True))
        print(f"  province/city/district all right, same replies: ours {ours_pcd}/{n} = {ours_pcd / n:.2%}, "
              f"cpca-linch {cpca_pcd}/{n} = {cpca_pcd / n:.2%} (its run: {spent:.1f} s with start-up)")
        for f in PCD:
            a = sum(right(g, r["expect"], f) for g, r in zip(answers, rows, strict=True))
            b = sum(right(g, r["expect"], f) for g, r in zip(theirs, rows, strict=True))
            print(f"    {f}: ours {a / n:.2%}, cpca-linch {b / n:.2%}")
        ok = ok and ours_pcd >= cpca_pcd
    print("OK" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
