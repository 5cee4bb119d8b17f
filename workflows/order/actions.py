"""The operators' and the warehouse's actions as the CLI, the HTTP API and the console offer them,
each tied to its message of the registry (`messages.MESSAGES`: its update, its payload model and
when the workflow refuses it). Everything outside the workflow that names an action derives it
from here: the CLI's subcommands and options (`cli.actions`), the API's action enum, fields and
roles (`service.schemas`), the console's forms and which of them a stage offers
(`service.console`), and the payloads the commands send (`commands.actions`).

A field is spelt by its API name everywhere outside the workflow (the form's `name`, the JSON
body's key, the CLI's ``--option`` with dashes); `payload` names the model's field where the two
differ (``txn`` → ``transaction_id``). `stages` are where the console offers the action; the
update's validator still decides. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from models.enums import Action, ShortagePolicy, SignalName, Stage
    from workflows.order.messages import MESSAGES, Message


@dataclass(frozen=True)
class Field:
    name: str  # the API's, the form's and (with dashes) the CLI option's name
    label: str  # the console's label (Chinese, then the name)
    payload: str | None = None  # the payload model's field, where it is named otherwise
    kind: str = "text"  # the form's control: text, tel, decimal, number, textarea, checkbox,
    # select (`choices`), shipment (the open shipments), sku (the lines), carrier (the policy's)
    choices: tuple[tuple[str, str], ...] = ()  # (value, label)
    required: bool = False
    positional: str | None = None  # the CLI takes it as this positional argument instead
    placeholder: str = ""  # a fixed placeholder, or the order's own value as the placeholder:
    hint: str | None = None  # its path in the order page's context ("address.province")
    value: str | None = None  # the form's default, fixed, or from the order page's context:
    value_from: str | None = None  # ("total": the order's total)
    wide: bool = False

    @property
    def to_payload(self) -> str:
        return self.payload or self.name


@dataclass(frozen=True)
class ActionSpec:
    name: Action
    signal: str  # its message in the registry
    title: tuple[str, str]  # the console's heading (Chinese, English)
    button: tuple[str, str]
    help: str  # the CLI's help line
    stages: frozenset[Stage]
    fields: tuple[Field, ...] = ()
    style: str = ""  # the button: "" (primary), "danger", "quiet"
    warehouse: bool = False  # a warehouse key may take it (else operators only)
    by_transfer: bool = False  # addressed by a transfer's id, not an order's

    @property
    def message(self) -> Message:
        return MESSAGES[self.signal]

    @property
    def update(self) -> str:
        update = self.message.update
        assert update is not None
        return update

    @property
    def model(self) -> type[BaseModel]:
        return self.message.model

    @property
    def kinds(self) -> dict[str, str]:
        return {f.name: f.kind for f in self.fields}

    @property
    def renamed(self) -> dict[str, str]:
        """API name → payload name, where they differ: as any action of the same payload model
        spells them (picked, packed and shipped share the warehouse event's ``tracking``)."""
        return {
            f.name: f.payload
            for spec in ACTIONS.values()
            if spec.model is self.model
            for f in spec.fields
            if f.payload
        }


_WAREHOUSE_STAGES = frozenset({Stage.RELEASED, Stage.PICKING, Stage.PACKED})
_CANCELLABLE = frozenset(stage for stage in Stage if stage.can_cancel)
_SHIPMENT = Field("shipment", "包裹 shipment", kind="shipment")
_NOTE = Field("note", "备注 note")

ACTIONS: dict[Action, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            Action.CONFIRM, SignalName.BUYER_CONFIRMED, ("确认更正", "Confirm correction"),
            ("确认", "Confirm"), "buyer_confirmed, with corrections",
            frozenset({Stage.AWAITING_BUYER}),
            (
                Field("phone", "电话 phone", kind="tel", placeholder="138…"),
                Field("name", "收件人 name"),
                Field("province", "省 province", hint="address.province"),
                Field("city", "市 city", hint="address.city"),
                Field("district", "区 district", hint="address.district"),
                Field("postal_code", "邮编 postal_code", hint="address.postal_code"),
                Field("detail", "详细地址 detail", hint="address.detail", wide=True),
                Field("delivery_window", "送货时间 delivery_window", placeholder="工作日 9-18点"),
                Field("channel", "渠道 channel", kind="select", choices=(
                    ("phone", "电话 phone"), ("im", "旺旺/IM"), ("sms", "短信 sms"),
                )),
                Field("remarks", "备注 remarks", wide=True),
                Field("parcel_locker", "放快递柜 parcel locker", kind="checkbox", wide=True),
                Field("note", "沟通结果 note", kind="textarea", placeholder="买家电话确认门牌号…", wide=True),
            ),
        ),
        ActionSpec(
            Action.PAY, SignalName.PAYMENT_RECEIVED, ("登记付款", "Record payment"),
            ("登记", "Record"), "payment_received", frozenset({Stage.AWAITING_PAYMENT}),
            (
                Field("amount", "金额 amount", kind="decimal", required=True, value_from="total"),
                Field("txn", "交易号 txn", payload="transaction_id", required=True),
                Field("method", "方式 method", placeholder="alipay", wide=True),
            ),
        ),
        ActionSpec(
            Action.DECIDE, SignalName.SHORTAGE_DECISION, ("缺货处理", "Shortage decision"),
            ("决定", "Decide"), "shortage_decision",
            frozenset({Stage.BACKORDERED, Stage.AWAITING_TRANSFER}),
            (
                Field("decision", "处理方式 decision", payload="policy", kind="select",
                      required=True, positional="policy", wide=True, choices=(
                          (ShortagePolicy.WAIT, "等待补货 wait for restock"),
                          (ShortagePolicy.PARTIAL, "部分发货 ship what is there"),
                          (ShortagePolicy.TRANSFER, "调拨 transfer from another warehouse"),
                          (ShortagePolicy.CANCEL, "取消并退款 cancel and refund"),
                      )),
                Field("note", "备注 note", wide=True),
            ),
        ),
        ActionSpec(
            Action.APPROVE, SignalName.APPROVE, ("批准", "Approve"), ("批准", "Approve"),
            "approve a flagged or high-value order", frozenset({Stage.AWAITING_APPROVAL}),
            (Field("note", "备注 note", placeholder="已电话核实"),),
        ),
        ActionSpec(
            Action.REJECT, SignalName.REJECT, ("驳回", "Reject"), ("驳回", "Reject"),
            "reject an order waiting for approval (cancel and refund)",
            frozenset({Stage.AWAITING_APPROVAL}),
            (Field("reason", "原因 reason", required=True),), style="danger",
        ),
        ActionSpec(
            Action.RESUME, SignalName.RESUME, ("恢复处理", "Resume"), ("恢复", "Resume"),
            "take an order off hold (a failed step runs again)", frozenset({Stage.ON_HOLD}),
            (_NOTE,),
        ),
        ActionSpec(
            Action.PICKED, SignalName.PICKED, ("已拣货", "Picked"), ("已拣货", "Picked"),
            "warehouse event: picked", _WAREHOUSE_STAGES, (_SHIPMENT,), style="quiet",
            warehouse=True,
        ),
        ActionSpec(
            Action.PACKED, SignalName.PACKED, ("已打包", "Packed"), ("已打包", "Packed"),
            "warehouse event: packed", _WAREHOUSE_STAGES,
            (
                _SHIPMENT,
                Field("parcels", "件数 parcels", kind="number", value="1"),
                Field("weight_g", "重量(克) weight_g", kind="number"),
            ),
            style="quiet", warehouse=True,
        ),
        ActionSpec(
            Action.SHIPPED, SignalName.SHIPPED, ("已发货", "Shipped"), ("发货", "Ship"),
            "warehouse event: shipped", _WAREHOUSE_STAGES,
            (
                _SHIPMENT,
                Field("carrier", "承运 carrier", kind="carrier"),
                Field("tracking", "运单号 tracking", payload="tracking_no", required=True, wide=True),
            ),
            warehouse=True,
        ),
        ActionSpec(
            Action.PICK_EXCEPTION, SignalName.PICK_EXCEPTION, ("拣货异常", "Pick exception"),
            ("报告", "Report"), "damaged / missing units at picking", _WAREHOUSE_STAGES,
            (
                _SHIPMENT,
                Field("sku", "SKU", kind="sku", required=True),
                Field("qty", "数量 qty", kind="number", required=True, value="1"),
                Field("reason", "原因 reason", kind="select", required=True, choices=(
                    ("damaged", "破损 damaged"), ("missing", "缺失 missing"),
                )),
            ),
            style="quiet", warehouse=True,
        ),
        ActionSpec(
            Action.DELIVERED, SignalName.DELIVERED, ("已签收", "Delivered"), ("已签收", "Delivered"),
            "the carrier delivered (when orders complete on delivery)",
            frozenset({Stage.SHIPPED}), (_SHIPMENT,), style="quiet", warehouse=True,
        ),
        ActionSpec(
            Action.CANCEL, SignalName.CANCEL, ("取消订单", "Cancel order"), ("取消订单", "Cancel"),
            "cancel with compensation", _CANCELLABLE,
            (Field("reason", "原因 reason", required=True, placeholder="买家申请取消"),),
            style="danger",
        ),
        ActionSpec(
            Action.TRANSFER_ARRIVED, SignalName.TRANSFER_ARRIVED, ("调拨到货", "Transfer arrived"),
            ("已到货", "Arrived"), "transfer_arrived", frozenset({Stage.AWAITING_TRANSFER}),
            style="quiet", warehouse=True, by_transfer=True,
        ),
    )
}
# The actions addressed to an order (`POST /v1/orders/{id}/actions/{action}`), in the registry's
# order; a transfer arrives by its own id.
ORDER_ACTIONS: tuple[ActionSpec, ...] = tuple(a for a in ACTIONS.values() if not a.by_transfer)


def offered(stage: str) -> list[ActionSpec]:
    """The order actions its stage offers a clerk (the workflow's update validator still decides)."""
    return [a for a in ORDER_ACTIONS if stage in a.stages]


def api_fields(spec: ActionSpec) -> frozenset[str]:
    """The body fields an action takes: its payload model's, by their API names (`by` is who
    the caller is, set by the service, never by the body)."""
    to_api = {payload: api for api, payload in spec.renamed.items()}
    return frozenset(to_api.get(name, name) for name in spec.model.model_fields if name != "by")

