"""The order's timeline as a clerk reads it: one sentence per thing that happened, in Chinese
and English (as the findings are), each told once.

The workflow records data (`status --json` keeps it as it is); this turns it into text for the
console and the CLI's `status`. One happening often leaves two entries: a stage change beside
the step that caused it (`released` then `stage: released`), or the buyer's confirmation beside
its contact outcome. The second one says nothing new, so it is left out here. Phone numbers and
address details arrive already masked by the workflow; nothing is unmasked.
"""

from __future__ import annotations

from typing import Any

STAGE_ZH = {
    "received": "已接收", "checking": "检查中", "awaiting_buyer": "待买家确认",
    "awaiting_payment": "待付款", "allocating": "分配库存", "backordered": "缺货等待",
    "awaiting_transfer": "等待调拨", "reviewing": "复核中", "awaiting_approval": "待审批",
    "released": "已下发仓库", "picking": "拣货中", "packed": "已打包", "shipped": "已发货",
    "completed": "已完成", "cancelled": "已取消", "on_hold": "挂起",
}
WAIT_ZH = {"buyer": "买家", "payment": "付款", "stock": "库存", "transfer": "调拨",
           "approval": "审批", "warehouse": "仓库", "operator": "人工处理"}
CHANNEL_ZH = {"im": "旺旺/IM", "sms": "短信", "phone": "电话"}
SIGNAL_ZH = {
    "buyer_confirmed": ("买家确认", "the buyer confirmed"),
    "payment_received": ("收到付款", "payment received"),
    "shortage_decision": ("缺货处理决定", "shortage decision"),
    "restock_arrived": ("补货到达", "restock arrived"),
    "transfer_arrived": ("调拨到货", "transfer arrived"),
    "approve": ("批准", "approval"),
    "reject": ("驳回", "rejection"),
    "picked": ("已拣货", "picked"),
    "packed": ("已打包", "packed"),
    "shipped": ("已发货", "shipped"),
    "pick_exception": ("拣货异常", "pick exception"),
    "delivered": ("已签收", "delivered"),
    "cancel": ("取消", "cancel"),
    "resume": ("恢复处理", "resume"),
}
PLATFORM_ZH = {"taobao": "淘宝", "pdd": "拼多多", "jd": "京东", "douyin": "抖音", "shopify": "Shopify"}
PLATFORM_EN = {"taobao": "Taobao", "pdd": "Pinduoduo", "jd": "JD", "douyin": "Douyin", "shopify": "Shopify"}
DECISION_ZH = {"wait": "等待补货", "partial": "部分发货", "transfer": "调拨", "cancel": "取消并退款"}
FIELD_ZH = {"buyer.phone": "电话", "buyer.name": "收件人", "address.province": "省",
            "address.city": "市", "address.district": "区", "address.detail": "详细地址",
            "address.postal_code": "邮编", "remarks": "备注"}
# What a stage change repeats when it follows these entries at the same moment.
_STAGE_OF = {"released": "released", "picked": "picking", "packed": "packed",
             "shipped": "shipped", "cancelled": "cancelled", "approval_requested": "awaiting_approval"}


def _stage(code: Any) -> tuple[str, str]:
    code = str(code or "")
    return STAGE_ZH.get(code, code), code.replace("_", " ")


def _with_note(zh: str, en: str, e: dict[str, Any], key: str = "note") -> tuple[str, str]:
    note = e.get(key)
    return (f"{zh}（{note}）", f"{en} ({note})") if note else (zh, en)


def _signal(e: dict[str, Any]) -> tuple[str, str]:
    name = str(e.get("signal") or "")
    zh, en = SIGNAL_ZH.get(name, (name, name.replace("_", " ")))
    how = "操作员" if e.get("via") == "update" else ("Temporal" if e.get("via") == "temporal" else "信号")
    how_en = "by an operator" if e.get("via") == "update" else (
        "from Temporal" if e.get("via") == "temporal" else "by signal")
    parts_zh, parts_en = [], []
    channel = e.get("channel")
    if channel:
        parts_zh.append(f"渠道{CHANNEL_ZH.get(channel, channel)}")
        parts_en.append(f"by {channel}")
    for key in ("phone", "name", "province", "city", "district", "detail", "postal_code",
                "remarks", "delivery_window"):
        if e.get(key):
            parts_zh.append(f"{FIELD_ZH.get('address.' + key, FIELD_ZH.get('buyer.' + key, key))} {e[key]}")
            parts_en.append(f"{key} {e[key]}")
    if e.get("parcel_locker"):
        parts_zh.append("放快递柜")
        parts_en.append("parcel locker")
    for key, label_zh in (("amount", "金额"), ("transaction_id", "交易号"), ("reason", "原因"),
                          ("note", "备注"), ("carrier", "承运"), ("tracking_no", "运单号"),
                          ("sku", "SKU"), ("qty", "数量")):
        if e.get(key) not in (None, ""):
            parts_zh.append(f"{label_zh} {e[key]}")
            parts_en.append(f"{key.replace('_', ' ')} {e[key]}")
    if e.get("policy"):
        parts_zh.append(DECISION_ZH.get(e["policy"], e["policy"]))
        parts_en.append(f"decision {e['policy']}")
    tail_zh = "：" + "，".join(parts_zh) if parts_zh else ""
    tail_en = ": " + ", ".join(parts_en) if parts_en else ""
    return f"{how}登记{zh}{tail_zh}。", f"{en.capitalize()} recorded {how_en}{tail_en}."


def sentence(e: dict[str, Any]) -> tuple[str, str]:
    """One timeline entry as (Chinese, English) sentences."""
    kind = e.get("type")
    if kind == "received":
        return (f"收到 {e.get('platform') or ''} 订单，共 {e.get('lines', '?')} 行。",
                f"Order received from {e.get('platform') or 'the platform'} with {e.get('lines', '?')} line(s).")
    if kind == "stage":
        zh, en = _stage(e.get("stage"))
        wait = e.get("waiting_for")
        if wait:
            return (f"进入「{zh}」，等待{WAIT_ZH.get(wait, wait)}。", f"Now {en}, waiting for {wait}.")
        return f"进入「{zh}」。", f"Now {en}."
    if kind == "checked":
        findings = e.get("findings") or []
        if not findings:
            return "检查通过，没有问题。", "Checked: nothing to fix."
        return ("检查发现：" + "；".join((f.get("message_zh") or f.get("code", "")).rstrip("。")
                                        for f in findings) + "。",
                "Checked and found: " + "; ".join(f.get("message") or f.get("code", "") for f in findings))
    if kind == "contact":
        channel = str(e.get("channel") or "")
        asks = "、".join(FIELD_ZH.get(a, a) for a in e.get("asks_for") or []) or "订单信息"
        asks_en = ", ".join(e.get("asks_for") or []) or "the order"
        n = int(e.get("reminder") or 0)
        if n:
            return (f"第 {n} 次提醒买家（{CHANNEL_ZH.get(channel, channel)}）确认{asks}。",
                    f"Reminder {n} sent to the buyer by {channel} about {asks_en}.")
        return (f"通过{CHANNEL_ZH.get(channel, channel)}联系买家确认{asks}。",
                f"Asked the buyer by {channel} to confirm {asks_en}.")
    if kind == "contact_outcome":
        return _with_note("记录买家答复", "The buyer's answer was recorded", e)
    if kind == "correction":
        field = str(e.get("field") or "")
        return (f"{FIELD_ZH.get(field, field)}由「{e.get('old') or '空'}」改为「{e.get('new') or '空'}」。",
                f"{field} changed from {e.get('old') or 'empty'!s} to {e.get('new') or 'empty'!s}.")
    if kind == "signal":
        return _signal(e)
    if kind == "signal_rejected":
        zh, en = SIGNAL_ZH.get(str(e.get("signal")), (str(e.get("signal")), str(e.get("signal"))))
        return f"未接受{zh}：{e.get('reason')}。", f"{en.capitalize()} not accepted: {e.get('reason')}."
    if kind == "payment":
        return (f"已付款 ¥{e.get('amount')}（交易号 {e.get('transaction_id')}）。",
                f"Paid ¥{e.get('amount')} (transaction {e.get('transaction_id')}).")
    if kind == "allocated":
        reserved = e.get("reserved") or []
        short = e.get("shortfalls") or []
        where = "、".join(sorted({str(r[1]) for r in reserved if len(r) > 1})) or "—"
        zh = f"已预留库存（仓库 {where}）" if reserved else "未能预留库存"
        en = f"Stock reserved (warehouse {where})" if reserved else "No stock could be reserved"
        if short:
            return zh + f"，{len(short)} 行缺货。", en + f"; {len(short)} line(s) short."
        return zh + "。", en + "."
    if kind == "reviewed":
        total = (e.get("totals") or {}).get("total")
        return f"复核金额：合计 ¥{total}。", f"Reviewed: total ¥{total}."
    if kind == "approval_requested":
        reasons = ", ".join(str(r) for r in e.get("reasons") or [])
        return f"需要审批（{reasons}）。", f"Approval requested ({reasons})."
    if kind == "approved":
        return _with_note("已批准", "Approved", e)
    if kind == "released":
        n = len(e.get("shipments") or [])
        return f"已下发仓库，{n} 个包裹。", f"Released to the warehouse in {n} shipment(s)."
    if kind in ("picked", "packed", "shipped"):
        zh = {"picked": "已拣货", "packed": "已打包", "shipped": "已发货"}[kind]
        track = f"，{e.get('carrier')} {e.get('tracking_no')}" if e.get("tracking_no") else ""
        track_en = f" by {e.get('carrier')} {e.get('tracking_no')}" if e.get("tracking_no") else ""
        return f"包裹 {e.get('shipment')} {zh}{track}。", f"Shipment {e.get('shipment')} {kind}{track_en}."
    if kind == "pick_exception":
        return (f"包裹 {e.get('shipment')} 拣货异常：{e.get('sku')} ×{e.get('qty')}（{e.get('reason')}）。",
                f"Pick exception on {e.get('shipment')}: {e.get('sku')} x{e.get('qty')} ({e.get('reason')}).")
    if kind == "timeout":
        wait = str(e.get("waiting_for") or "")
        return (f"等待{WAIT_ZH.get(wait, wait)}超时，处理方式：{e.get('action')}。",
                f"The wait for {wait} timed out: {e.get('action')}.")
    if kind == "cancelling":
        return f"开始取消：{e.get('reason')}。", f"Cancelling: {e.get('reason')}."
    if kind == "cancelled":
        return f"包裹 {e.get('shipment')} 已取消。", f"Shipment {e.get('shipment')} cancelled."
    if kind == "refund":
        return f"退款 ¥{e.get('amount')}（{e.get('reason')}）。", f"Refund of ¥{e.get('amount')} ({e.get('reason')})."
    if kind == "transfer_requested":
        return (f"申请调拨 {e.get('sku')} ×{e.get('qty')}：{e.get('from')} → {e.get('to')}。",
                f"Transfer requested: {e.get('sku')} x{e.get('qty')} {e.get('from')} → {e.get('to')}.")
    if kind == "transfer_arrived":
        return f"调拨 {e.get('transfer_id')} 到货。", f"Transfer {e.get('transfer_id')} arrived."
    if kind == "shortage_decision_applied":
        policy = str(e.get("policy") or "")
        return f"缺货处理：{DECISION_ZH.get(policy, policy)}。", f"Shortage handled: {policy}."
    if kind in ("step_failed", "undo_failed", "webhook_failed", "signal_failed"):
        what = e.get("step") or e.get("target") or ""
        return f"步骤失败 {what}：{e.get('error')}。", f"Step {kind} {what}: {e.get('error')}."
    if kind == "parcel":  # the shipping desk: a carrier chosen and a waybill issued, or held
        if e.get("hold"):
            return (f"包裹 {e.get('shipment')} 暂缓出单：{e.get('reason') or e.get('hold')}。",
                    f"Shipment {e.get('shipment')} held at the desk: {e.get('reason') or e.get('hold')}.")
        why_zh, why_en = (f"（{e['reason']}）", f" ({e['reason']})") if e.get("reason") else ("", "")
        return (f"包裹 {e.get('shipment')} 选定承运 {e.get('carrier')}{why_zh}，运单号 {e.get('waybill') or '—'}。",
                f"Shipment {e.get('shipment')}: carrier {e.get('carrier')}{why_en}, waybill {e.get('waybill') or '—'}.")
    if kind == "parcel_readdressed":  # the buyer changed the address: the desk re-labelled it
        parcel, old, new = e.get("parcel"), e.get("old_waybill"), e.get("waybill")
        if e.get("hold"):
            return (f"改址后包裹 {parcel} 暂缓出单：{e.get('reason') or e.get('hold')}。",
                    f"Parcel {parcel} held after the address change: {e.get('reason') or e.get('hold')}.")
        if old and old == new:
            return (f"改址：包裹 {parcel} 保留运单号 {new}（尚未打印），面单按新地址打印。",
                    f"Address changed: parcel {parcel} keeps waybill {new} (not printed yet); "
                    "its label prints the new address.")
        gone_zh, gone_en = (f"原运单号 {old} 作废，", f"waybill {old} voided, ") if old else ("", "")
        return (f"改址：包裹 {parcel} {gone_zh}新运单号 {new}（{e.get('carrier')}），请重新打印面单。",
                f"Address changed: parcel {parcel}: {gone_en}new waybill {new} ({e.get('carrier')}); "
                "print its label again.")
    if kind == "parcel_failed":
        return (f"包裹 {e.get('shipment')} 出单失败：{e.get('error')}。",
                f"Shipment {e.get('shipment')}: no waybill ({e.get('error')}).")
    if kind == "waybills_voided":
        numbers = [str(w) for w in e.get("waybills") or []]
        gone = [str(w) for w in e.get("cancelled") or []]
        zh = f"作废 {len(numbers)} 个运单号：{'、'.join(numbers)}"
        en = f"{len(numbers)} waybill(s) voided: {', '.join(numbers)}"
        if gone:
            zh, en = zh + f"（菜鸟已取消 {'、'.join(gone)}）", en + f" (cancelled at Cainiao: {', '.join(gone)})"
        return zh + "。", en + "."
    if kind == "write_back":  # the tracking told to the platform (platforms.writeback)
        return _write_back(e)
    if kind == "write_back_resent":  # a clerk sends a refused write-back again
        where = str(e.get("platform") or "")
        shipments = "、".join(str(n) for n in e.get("shipments") or [])
        note_zh, note_en = (f"：{e['note']}", f": {e['note']}") if e.get("note") else ("", "")
        return (f"{e.get('by') or '操作员'} 重新回传包裹 {shipments} 的运单到"
                f"{PLATFORM_ZH.get(where, where or '平台')}（下次同步时发送）{note_zh}。",
                f"{e.get('by') or 'A clerk'} resent shipment {shipments}'s tracking to "
                f"{PLATFORM_EN.get(where, where or 'the platform')} (sent at the shop's next sync){note_en}.")
    if kind == "flag_cleared":  # a clerk settled what an outside flag asked for
        note_zh, note_en = (f"：{e['note']}", f": {e['note']}") if e.get("note") else ("", "")
        return (f"{e.get('by') or '操作员'} 清除标记 {e.get('flag')}{note_zh}。",
                f"{e.get('by') or 'A clerk'} cleared the flag {e.get('flag')}{note_en}.")
    if kind == "step_retried":
        return f"重试步骤 {e.get('step')}。", f"Step {e.get('step')} retried."
    rest = ", ".join(f"{k} {v}" for k, v in e.items() if k not in ("at", "type"))
    return f"事件 {kind}：{rest}。" if rest else f"事件 {kind}。", f"{kind}: {rest}." if rest else f"{kind}."


def _write_back(e: dict[str, Any]) -> tuple[str, str]:
    platform = str(e.get("platform") or "")
    where_zh = PLATFORM_ZH.get(platform, platform or "平台")
    where_en = PLATFORM_EN.get(platform, platform or "the platform")
    what_zh = f"包裹 {e.get('shipment')} 的运单 {e.get('carrier')} {e.get('tracking_no')}"
    what_en = f"shipment {e.get('shipment')}'s tracking {e.get('carrier')} {e.get('tracking_no')}"
    reason = e.get("reason")
    if e.get("outcome") == "done":
        why_zh, why_en = (f"（{reason}）", f" ({reason})") if reason else ("", "")
        return (f"{what_zh} 已回传{where_zh}{why_zh}。",
                f"{what_en[0].upper()}{what_en[1:]} written back to {where_en}{why_en}.")
    if e.get("outcome") == "refused":
        return (f"{where_zh}拒绝回传{what_zh}：{reason}。已标记 platform_ship_refused，请人工处理。",
                f"{where_en[0].upper()}{where_en[1:]} refused {what_en}: {reason}. Flagged "
                "platform_ship_refused for a clerk.")
    return (f"{what_zh} 暂未回传{where_zh}：{reason}。",
            f"{what_en[0].upper()}{what_en[1:]} not written back to {where_en} yet: {reason}.")


def _repeats(e: dict[str, Any], before: dict[str, Any] | None) -> bool:
    """True when `e` only repeats what the entry before it (at the same moment) said."""
    if before is None or before.get("at") != e.get("at"):
        return False
    kind, prev = e.get("type"), before.get("type")
    if kind == "stage":
        return _STAGE_OF.get(str(prev)) == e.get("stage")
    if kind == "contact_outcome":
        return prev == "signal" and before.get("signal") == "buyer_confirmed"
    return False


def sentences(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timeline as [{at, type, zh, en}], each happening once, oldest first."""
    told: list[dict[str, Any]] = []
    before: dict[str, Any] | None = None
    seen: set[tuple[str, str]] = set()
    for e in events:
        zh, en = sentence(e)
        key = (str(e.get("at")), zh)
        if not _repeats(e, before) and key not in seen:
            told.append({"at": e.get("at"), "type": e.get("type"), "zh": zh, "en": en})
            seen.add(key)
        before = e
    return told
