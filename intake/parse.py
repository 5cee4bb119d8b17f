"""Paste-to-fill (智能识别): a buyer's free-text reply split into the confirm form's fields.

A buyer answers "where do we send it" in one line or a few: name, phone and address in any
order, with or without spaces, commas, line breaks or labels (收件人/电话/地址), the province
often left out, a municipality written once (上海浦东新区…). `parse_reply` finds

- the phone (a mobile number, maybe written 138-1234-5678 or +86 138 1234 5678, or a landline
  with its area code) and a postal code (six digits standing alone, or after 邮编);
- the divisions, top down against the same table as the address check
  (`intake.divisions`: today's names, stems, short forms, former names): the province if
  written, else the city (or a municipality) it implies; the city; the district (a town or a
  street for the cities and units that have no county level);
- the detail: what follows the divisions;
- the name: a labelled one, else a short word of Chinese characters standing apart, or glued
  to the start of the address or to the end of its detail.

Nothing is saved and nothing leaves the process: the clerk checks the filled form and
confirms it. `confidence` (0..1) says how much was found and how surely; `unparsed` keeps
what fitted nowhere, so that nothing the buyer wrote is lost silently.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from intake.divisions import (
    AREA,
    CITY,
    DIRECT,
    MUNICIPALITY,
    NO_COUNTY,
    REGION,
    Unit,
    divisions,
    key,
    stem,
)

MAX_TEXT = 2000  # a reply, not a document: longer texts are refused by the API

_LABELS = {
    "name": ("收件人姓名", "收货人姓名", "收件人", "收货人", "联系人", "姓名", "名字", "收件"),
    "phone": ("手机号码", "联系电话", "电话号码", "联系方式", "手机号", "手机", "电话", "tel", "phone"),
    "region": ("所在地区", "所在地", "省市区", "地区"),
    "address": ("详细地址", "收货地址", "收件地址", "地址", "address"),
    "postal": ("邮政编码", "邮编"),
}
_LABEL_OF = {label.lower(): kind for kind, labels in _LABELS.items() for label in labels}
_LABEL_RE = re.compile(
    "(" + "|".join(sorted(map(re.escape, _LABEL_OF), key=len, reverse=True)) + r")\s*[:：]?\s*",
    re.IGNORECASE,
)
_MOBILE_RE = re.compile(r"(?<!\d)(?:\+?86[-\s]?)?(1[3-9]\d(?:[-\s]?\d){8})(?!\d)")
_LANDLINE_RE = re.compile(r"(?<!\d)(0\d{2,3})[-\s]?(\d{7,8})(?!\d)")
_POSTAL_RE = re.compile(r"(?<![\d#])(\d{6})(?![\d号室楼栋幢层弄单元座户])")
_HARD_SEP_RE = re.compile(r"[\n\r,，;；|]+")
_CJK_NAME_RE = re.compile(r"^[\u4e00-\u9fff][\u4e00-\u9fff·•]{1,7}$")
# Characters that make a short word an address part rather than a name.
_ADDRESS_CUES = frozenset("路街道巷弄号室楼栋幢座层单元村组区苑园庄院府寓舍厦城镇乡里湾广场小期")
_DOTTED_NAME_RE = re.compile(r"[\u4e00-\u9fff]{1,8}[·•][\u4e00-\u9fff]{1,8}$")
# After these, a few Chinese characters that end the text are a name glued to the detail.
_DETAIL_ENDS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz室号楼层户栋幢座元")
# Common surnames (single and compound), to tell a name from a place word.
_SURNAMES_2 = frozenset(
    ["欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "夏侯", "轩辕", "令狐", "钟离", "端木", "独孤", "南宫"]
)
_SURNAMES_1 = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞"
    "左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕"
    "屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧"
    "闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)


@dataclass
class Parsed:
    name: str | None = None
    phone: str | None = None
    province: str | None = None
    city: str | None = None
    district: str | None = None
    detail: str | None = None
    postal_code: str | None = None
    confidence: float = 0.0
    unparsed: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ the index


@dataclass(frozen=True)
class _Index:
    """Every spelling of the children of one unit, for matching at the start of a text."""

    names: dict[str, Unit]
    longest: int


def _index_of(unit: Unit) -> _Index:
    names: dict[str, Unit] = {}
    for table in (unit.former_stems, unit.former, unit.stems, unit.exact):  # the later wins
        for spelling, child in table.items():
            if child is not None and len(spelling) >= 2:
                names[spelling] = child
    return _Index(names, max((len(s) for s in names), default=0))


@lru_cache(maxsize=4096)
def _cached_index(code: str) -> _Index:
    d = divisions()
    return _index_of(d.root if code == "" else d.by_code[code])


def _index(unit: Unit) -> _Index:
    return _cached_index(unit.code)


@lru_cache(maxsize=1)
def _cities() -> _Index:
    """The cities (and municipalities' districts) of the whole country, by unique spellings:
    for a reply that leaves the province out."""
    d = divisions()
    seen: dict[str, Unit | None] = {}
    for province in d.root.children:
        if province.kind == REGION:
            continue
        for spelling, child in _index(province).names.items():
            if province.kind == MUNICIPALITY and len(spelling) < 3:
                continue  # 朝阳 alone names a district of Beijing and a city of Liaoning
            if seen.get(spelling, child) is not child:
                seen[spelling] = None
            else:
                seen[spelling] = child
    names = {s: u for s, u in seen.items() if u is not None}
    return _Index(names, max(len(s) for s in names))


# A short form followed by one of these names a street, not a place (新华路 is no 新华镇).
_STREET_CHARS = frozenset("路街巷道弄")


def _match(index: _Index, text: str, at: int) -> tuple[Unit, int] | None:
    """The longest spelling of `index` at `text[at:]`: (unit, length)."""
    for length in range(min(index.longest, len(text) - at), 1, -1):
        spelling = text[at : at + length]
        hit = index.names.get(spelling)
        if hit is None:
            continue
        after = text[at + length : at + length + 2]
        if after and (after[0] in _STREET_CHARS or after in ("大道", "大街")) and \
                spelling not in hit.aliases and _match(_index(hit), text, at + length) is None:
            continue  # 新华路: a street; 唐山路南区: 唐山 and its district 路南区
        return hit, length
    return None


# -------------------------------------------------------------- the divisions


@dataclass
class _Divisions:
    province: Unit | None = None
    city: Unit | None = None
    district: Unit | None = None
    end: int = 0  # where the detail starts
    levels: int = 0  # how many parts were written
    inferred: int = 0  # parts implied by a lower one (the province left out)


def _skip_repeat(text: str, at: int, unit: Unit) -> int:
    """Past a repetition of `unit`'s own name (上海市上海市, 北京市市辖区)."""
    for spelling in sorted(unit.aliases | {stem(a) for a in unit.aliases} | {"市辖区", "县"},
                           key=len, reverse=True):
        if len(spelling) >= 1 and text.startswith(spelling, at) and spelling.isascii() is False:
            return at + len(spelling)
    return at


def _divisions_at(text: str, at: int) -> _Divisions | None:
    """The divisions written from `text[at:]` (`text` in compare form), or None: from the
    province, or from a city when that reads more of the text (海南藏族自治州 is in 青海)."""
    best: _Divisions | None = None
    for from_city in (False, True):
        found = _divisions_from(text, at, from_city)
        if found is not None and (best is None or (found.levels, found.end) > (best.levels, best.end)):
            best = found
    return best


def _divisions_from(text: str, at: int, from_city: bool) -> _Divisions | None:
    d = divisions()
    out = _Divisions()
    hit = None if from_city else _match(_index(d.root), text, at)
    if hit is not None:
        out.province, length = hit
        at += length
        out.levels = 1
    else:
        if not from_city:
            return None
        hit = _match(_cities(), text, at)
        if hit is None:
            return None
        unit, length = hit
        at += length
        out.levels, out.inferred = 1, 1
        out.province = unit.parent
        if out.province is not None and out.province.kind == MUNICIPALITY:
            out.district = unit
            out.end = at
            return out
        out.city = unit
    province = out.province
    assert province is not None
    if out.city is None:
        if province.kind == MUNICIPALITY:
            at = _skip_repeat(text, at, province)
            hit = _match(_index(province), text, at)
            if hit is not None:
                out.district, length = hit
                at += length
                out.levels += 1
            out.end = at
            return out
        hit = _match(_index(province), text, at)
        if hit is None:
            out.end = at
            return out
        out.city, length = hit
        at += length
        out.levels += 1
    city = out.city
    if city.kind not in (CITY, NO_COUNTY, DIRECT, AREA):
        city = city.city or city  # a former city, a district today
        out.city = city
    hit = _match(_index(city), text, at)
    if hit is None and city.kind in (NO_COUNTY, DIRECT):
        at2 = _skip_repeat(text, at, city)  # 东莞市东莞市长安镇
        hit = _match(_index(city), text, at2) if at2 != at else None
        if hit is not None:
            at = at2
    if hit is not None:
        out.district, length = hit
        at += length
        out.levels += 1
        if out.district.city is not None and out.district.city is not city:
            out.city = out.district.city  # moved since (四平市公主岭市 → 长春市)
    out.end = at
    return out


def _find_divisions(text: str, cmp: str, *, name_wanted: bool) -> tuple[_Divisions, str] | None:
    """The divisions at the start of `text`, or after a glued name of 2-4 characters:
    (divisions, the name before them or "")."""
    first = _divisions_at(cmp, 0)
    if first is not None and first.levels >= 2:
        return first, ""
    best: tuple[_Divisions, str] | None = (first, "") if first is not None else None
    if name_wanted:
        for skip in (2, 3, 4):
            if skip >= len(cmp) or not _CJK_NAME_RE.match(text[:skip]):
                break
            found = _divisions_at(cmp, skip)
            if found is not None and (best is None or found.levels > best[0].levels):
                best = found, text[:skip]
                if found.levels >= 2:
                    break
    return best


# -------------------------------------------------------------------- parsing


def _compare_form(text: str) -> str:
    """Same length as `text`: simplified characters, lower case (indices line up)."""
    if text.isascii():
        return text.lower()
    folded = text.translate(_simplify()).lower()
    if len(folded) == len(text):
        return folded
    return "".join(k if len(k := key(ch)) == 1 else ch for ch in text)  # a rare length change


@lru_cache(maxsize=1)
def _simplify() -> dict[int, str]:
    """Traditional → simplified characters, one for one (the address check's own table)."""
    from intake.divisions import _table

    return _table().simplify


_SEPARATORS = frozenset(" \t\n\r,，;；|:：")


def _pieces(text: str) -> list[tuple[str | None, str]]:
    """(label kind or None, text) in order: the text split at its labels. A label counts where
    it starts the text, follows a separator or a number, or ends in a colon; a phone label
    also where digits follow (张三电话138…)."""
    out: list[tuple[str | None, str]] = []
    kind: str | None = None
    last = 0
    for m in _LABEL_RE.finditer(text):
        label = _LABEL_OF[m.group(1).lower()]
        prev = text[m.start() - 1] if m.start() else " "
        nxt = text[m.end()] if m.end() < len(text) else ""
        if not (prev in _SEPARATORS or prev.isdigit() or text[m.end() - 1] in ":："
                or (label == "phone" and (nxt.isdigit() or nxt == "+"))):
            continue
        out.append((kind, text[last : m.start()]))
        kind = label
        last = m.end()
    out.append((kind, text[last:]))
    return [(k, t) for k, t in out if t.strip()]


# Words of a reply that are no name, though they start with a surname (谢谢 and 谢).
_NOT_NAMES = frozenset(["谢谢", "您好", "你好", "麻烦", "尽快", "发货", "快递", "收到", "好的", "老板",
                        "在吗", "辛苦", "感谢", "多谢", "方便"])


def _name_score(word: str) -> int:
    if not _CJK_NAME_RE.match(word) or len(word) > 5 and "·" not in word or word in _NOT_NAMES:
        return 0
    score = 1
    if word[:2] in _SURNAMES_2 or word[0] in _SURNAMES_1:
        score += 2
    if not (_ADDRESS_CUES & set(word)):
        score += 1
    if _divisions_at(_compare_form(word), 0) is not None:
        score -= 2
    return score


def _name_at_end(detail: str) -> tuple[str | None, str]:
    """(name, detail without it) for a detail that ends in a glued name (…501室张三)."""
    m = _DOTTED_NAME_RE.search(detail)  # 阿依古丽·买买提: a name in the way of its people
    if m:
        start = m.start()
        while start < len(detail) and (detail[start] in _DETAIL_ENDS or detail[start] in _ADDRESS_CUES):
            start += 1
        if start > 0 and detail[start - 1] in _DETAIL_ENDS:
            return detail[start:], detail[:start]
    for length in (4, 3, 2):
        if len(detail) <= length or detail[-length - 1] not in _DETAIL_ENDS:
            continue
        word = detail[-length:]
        if _name_score(word) >= 3 and (word[:2] in _SURNAMES_2 or word[0] in _SURNAMES_1):
            return word, detail[:-length]
    return None, detail


def _phone(text: str) -> tuple[str | None, str]:
    m = _MOBILE_RE.search(text)
    if m:
        digits = re.sub(r"\D", "", m.group(1))
        return digits, text[: m.start()] + "\n" + text[m.end() :]
    m = _LANDLINE_RE.search(text)
    if m:
        return f"{m.group(1)}-{m.group(2)}", text[: m.start()] + "\n" + text[m.end() :]
    return None, text


def parse_reply(text: str) -> Parsed:
    """The confirm form's fields from a buyer's reply (see the module's docstring)."""
    text = unicodedata.normalize("NFKC", text or "").replace("\u3000", " ").strip()
    out = Parsed()
    if not text:
        return out
    name: str | None = None
    address_parts: list[str] = []
    words: list[tuple[int, str]] = []  # (segment no, word) of unlabelled text
    segment = 0
    for kind, piece in _pieces(text):
        if kind == "phone" and out.phone is None:
            out.phone, piece = _phone(piece)
        if kind == "postal":
            m = re.search(r"\d{6}", piece)
            if m:
                out.postal_code = m.group(0)
                piece = piece[: m.start()] + "\n" + piece[m.end() :]
        if out.phone is None:
            out.phone, piece = _phone(piece)
        for part in _HARD_SEP_RE.split(piece):
            part = part.strip()
            if not part:
                continue
            segment += 1
            if kind == "name" and name is None and _CJK_NAME_RE.match(part.replace(" ", "")):
                name = part.replace(" ", "")
            elif kind in ("address", "region"):
                address_parts.append("".join(part.split()))
            else:
                words.extend((segment, w) for w in part.split())
    if out.postal_code is None:
        for i, (seg, w) in enumerate(words):
            m = _POSTAL_RE.fullmatch(w.strip("()（）"))
            if m:
                out.postal_code = m.group(1)
                words[i] = (seg, "")
                break
    words = [(s, w) for s, w in words if w]

    # The address: labelled, or from the first word where divisions start, with the rest of
    # its segment (a trailing word that reads as a name excepted).
    used: set[int] = set()
    found: tuple[_Divisions, str] | None = None
    if address_parts:
        address = "".join(address_parts)
        found = _find_divisions(address, _compare_form(address), name_wanted=name is None)
    else:
        address = ""
        starts = []  # the word whose divisions read furthest is the address (金华 may be a name)
        for i, (_seg, w) in enumerate(words):
            here = _find_divisions(w, _compare_form(w), name_wanted=name is None)
            if here is not None:
                starts.append(((here[0].levels, len(w) - len(here[1])), -i, here))
        if starts:
            _rank, neg_i, found = max(starts, key=lambda t: t[:2])
            i = -neg_i
            seg = words[i][0]
            j = i + 1
            while j < len(words) and words[j][0] == seg:
                j += 1
            tail = list(range(i, j))
            if name is None and len(tail) > 1 and _name_score(words[tail[-1]][1]) >= 3:
                name = words[tail[-1]][1]  # …文三路100号 张三: the name after the address
                used.add(tail[-1])
                tail = tail[:-1]
            address = "".join(words[k][1] for k in tail)
            used.update(tail)
        if found is None:  # no division at all: the first word that reads as an address
            for i, (_seg, w) in enumerate(words):
                if any(ch.isdigit() for ch in w) and _ADDRESS_CUES & set(w):
                    address, found = w, None
                    used.add(i)
                    break
    if found is not None:
        div, glued = found
        if glued and name is None:
            name = glued
        address = address[len(glued) :]
        out.province = div.province.name if div.province else None
        if div.province is not None and div.province.kind == MUNICIPALITY:
            out.city = div.province.name
        else:
            out.city = div.city.name if div.city else None
        out.district = div.district.name if div.district else None
        detail = address[div.end :].lstrip(" -—:：,，")
    else:
        detail = address
    # The name: a labelled one, glued, or the best-scored word left.
    leftovers = [(i, w) for i, (_s, w) in enumerate(words) if i not in used]
    if name is None:
        scored = sorted(((_name_score(w), -i, w) for i, w in leftovers), reverse=True)
        if scored and scored[0][0] >= 2:
            name = scored[0][2]
            leftovers = [(i, w) for i, w in leftovers if i != -scored[0][1]]
    if name is None and detail:
        name, detail = _name_at_end(detail)
    out.name = name
    out.detail = detail or None
    out.unparsed = " ".join(w for _i, w in leftovers)
    out.confidence = _confidence(out, found)
    return out


def _confidence(out: Parsed, found: tuple[_Divisions, str] | None) -> float:
    score = 1.0
    if not out.name:
        score -= 0.2
    if not out.phone:
        score -= 0.2
    if found is None:
        score -= 0.4
    else:
        div = found[0]
        score -= 0.05 * div.inferred
        if div.district is None:
            score -= 0.15
    if not out.detail:
        score -= 0.2
    if out.unparsed:
        score -= 0.1
    return round(max(0.0, min(1.0, score)), 2)
