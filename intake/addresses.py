"""Resolving an address's province, city and district to today's divisions (`intake.divisions`),
with what is wrong said in today's names (see `intake.divisions` for the rules)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from intake.divisions import (
    _DIRECT_CITY_LABELS,
    _MUNICIPALITY_CITY_LABELS,
    _PAREN_RE,
    CITY,
    DIRECT,
    MUNICIPALITY,
    NO_COUNTY,
    REGION,
    Unit,
    _add_stem,
    divisions,
    key,
    stem,
)

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
