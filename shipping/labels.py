"""Shipping labels (贴单, SPEC §3.10 item 3): one PDF page per parcel, drawn with reportlab.

The waybill number is a Code 128 barcode drawn by reportlab's own `Code128` (no hand-made
bars) with the digits under it. Chinese text is set in a TrueType CJK font from a Debian
package (WenQuanYi Zen Hei / Micro Hei: reportlab embeds a subset of it, so any viewer and
`pdftotext` read the characters back); where none is installed, reportlab's built-in
`STSong-Light` CID font is used (not embedded: viewers substitute their own CJK font).

The receiver is printed masked: the name to its first character, the phone as
138****5678; the address in full, as the courier needs it.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

SIZES: dict[str, tuple[float, float]] = {"76x130": (76 * mm, 130 * mm),
                                          "100x180": (100 * mm, 180 * mm)}
FONT_FILES = (
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
)
CID_FALLBACK = "STSong-Light"


@lru_cache(maxsize=1)
def cjk_font() -> str:
    """The registered name of the CJK font labels are set in (registered once a process)."""
    from reportlab.pdfbase.ttfonts import TTFont

    for path, index in FONT_FILES:
        if Path(path).exists():
            pdfmetrics.registerFont(TTFont("OmsCJK", path, subfontIndex=index))
            return "OmsCJK"
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    pdfmetrics.registerFont(UnicodeCIDFont(CID_FALLBACK))
    return CID_FALLBACK


def mask_name(name: str | None) -> str:
    """张三丰 → 张**; the first character only."""
    name = (name or "").strip()
    if not name:
        return "*"
    return name[0] + "*" * max(1, len(name) - 1)


def mask_phone(phone: str | None) -> str:
    """13812345678 → 138****5678; any other number keeps only its last four digits."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if len(digits) == 11 and digits.startswith("1"):
        return f"{digits[:3]}****{digits[-4:]}"
    if len(digits) <= 4:
        return "****"
    return "*" * (len(digits) - 4) + digits[-4:]


@dataclass
class Label:
    """Everything printed on one parcel's label (already masked where it must be)."""

    waybill: str
    carrier: str
    carrier_name: str
    receiver_name: str
    receiver_phone: str
    address: str
    sender: str
    items: list[tuple[str, int]]
    order_ids: list[str]
    remarks: str = ""
    routing_code: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Lines of `text` that fit `width` (CJK text breaks anywhere; that is how labels do it)."""
    lines: list[str] = []
    for para in text.splitlines() or [""]:
        current = ""
        for ch in para:
            if pdfmetrics.stringWidth(current + ch, font, size) > width and current:
                lines.append(current)
                current = ch
            else:
                current += ch
        lines.append(current)
    return lines


def draw_label(c: Canvas, label: Label, size: str) -> None:
    width, height = SIZES[size]
    s = width / (76 * mm)  # everything scales with the page's width
    font = cjk_font()
    margin = 3 * mm * s
    inner = width - 2 * margin
    y = height - margin

    def text(value: str, pt: float, *, gap: float = 1.3, bold_rule: bool = False,
             max_lines: int = 6) -> None:
        nonlocal y
        c.setFont(font, pt * s)
        for line in _wrap(value, font, pt * s, inner)[:max_lines]:
            y -= pt * s * gap
            c.drawString(margin, y, line)
        if bold_rule:
            y -= 1.5 * mm * s
            c.line(margin, y, width - margin, y)

    # Carrier and routing code.
    c.setFont(font, 13 * s)
    y -= 13 * s * 1.2
    c.drawString(margin, y, label.carrier_name)
    if label.routing_code:
        c.setFont(font, 15 * s)
        c.drawRightString(width - margin, y, label.routing_code)
    y -= 2 * mm * s
    c.line(margin, y, width - margin, y)

    # The waybill's barcode, as wide as the label allows, quiet zones kept.
    probe = Code128(label.waybill, barWidth=1, humanReadable=False)
    bar_width = min(0.6 * mm * s, (inner - 8 * mm * s) / probe.width)
    bar_height = 16 * mm * s
    code = Code128(label.waybill, barWidth=bar_width, barHeight=bar_height, humanReadable=False,
                   quiet=True)
    y -= bar_height + 3 * mm * s
    code.drawOn(c, (width - code.width) / 2, y)
    c.setFont("Helvetica-Bold", 11 * s)
    y -= 11 * s * 1.2
    c.drawCentredString(width / 2, y, label.waybill)
    y -= 2 * mm * s
    c.line(margin, y, width - margin, y)

    text(f"收 {label.receiver_name}  {label.receiver_phone}", 11, max_lines=1)
    text(label.address, 9.5, max_lines=3, bold_rule=True)
    text(f"寄 {label.sender}", 7.5, max_lines=2, bold_rule=True)
    items = "；".join(f"{name} × {qty}" for name, qty in label.items)
    text(f"物品 {items}", 7.5, max_lines=5)
    if label.remarks:
        text(f"备注 {label.remarks}", 7.5, max_lines=2)
    y -= 1 * mm * s
    c.line(margin, y, width - margin, y)
    text("订单 " + ", ".join(label.order_ids), 7, max_lines=3)


def render(labels: list[Label], size: str = "76x130") -> bytes:
    """One PDF, one page a label, in the order given."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    buffer = io.BytesIO()
    c = Canvas(buffer, pagesize=SIZES[size], pageCompression=1)
    c.setTitle("OMS labels")
    for label in labels:
        draw_label(c, label, size)
        c.showPage()
    c.save()
    return buffer.getvalue()
