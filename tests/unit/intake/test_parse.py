"""Paste-to-fill (intake/parse.py) on the kept set of buyers' replies and on hand-picked ones."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from intake.parse import parse_reply
from tests.data.make_parse_set import OUT, SHAPES, make

SIX = ("name", "phone", "province", "city", "district", "detail")


def wrong_fields(text: str, expect: dict[str, str | None]) -> list[str]:
    got = parse_reply(text).as_dict()
    wrong = [f for f in SIX if got[f] != expect[f]]
    if expect.get("postal_code") and got["postal_code"] != expect["postal_code"]:
        wrong.append("postal_code")
    return wrong


def test_the_kept_set_is_what_its_generator_makes() -> None:
    kept = [json.loads(line) for line in OUT.read_text("utf-8").splitlines()]
    assert kept == make()  # the generator and the file agree (regenerate both together)
    assert len(kept) >= 1000
    assert set(Counter(r["shape"] for r in kept)) == set(SHAPES) and len(SHAPES) >= 8


def test_all_six_fields_are_right_on_at_least_99_percent_of_the_set_and_every_shape() -> None:
    rows = [json.loads(line) for line in OUT.read_text("utf-8").splitlines()]
    per_shape: Counter[str] = Counter()
    right: Counter[str] = Counter()
    misses = []
    for row in rows:
        per_shape[row["shape"]] += 1
        wrong = wrong_fields(row["text"], row["expect"])
        if wrong:
            misses.append((row["text"], wrong))
        else:
            right[row["shape"]] += 1
    assert sum(right.values()) >= 0.99 * len(rows), misses[:10]
    for shape, n in per_shape.items():
        assert right[shape] >= 0.97 * n, (shape, [m for m in misses if m][:5])


@pytest.mark.parametrize(("text", "expect"), [
    ("张三 13812345678 浙江省杭州市西湖区文三路100号3幢501室",
     {"name": "张三", "phone": "13812345678", "province": "浙江省", "city": "杭州市",
      "district": "西湖区", "detail": "文三路100号3幢501室"}),
    ("收件人：李四\n电话：139-1234-5678\n地址：上海浦东新区张江路88弄5号601",  # written once
     {"name": "李四", "phone": "13912345678", "province": "上海市", "city": "上海市",
      "district": "浦东新区", "detail": "张江路88弄5号601"}),
    ("赵六13812345678杭州市西湖区文三路100号",  # no separator, the province left out
     {"name": "赵六", "phone": "13812345678", "province": "浙江省", "city": "杭州市",
      "district": "西湖区", "detail": "文三路100号"}),
    ("浙江省杭州市西湖区文三路100号3幢501室张三13812345678",  # the name glued to the detail
     {"name": "张三", "phone": "13812345678", "province": "浙江省", "city": "杭州市",
      "district": "西湖区", "detail": "文三路100号3幢501室"}),
    ("四平市公主岭市岭东路10号 周九 +86 135 1234 5678",  # a former home: 长春市 today
     {"name": "周九", "phone": "13512345678", "province": "吉林省", "city": "长春市",
      "district": "公主岭市", "detail": "岭东路10号"}),
    ("湖北省神农架林区新华路526号 刘婷 13800001111",  # 新华路 is a street, not 新华镇
     {"name": "刘婷", "phone": "13800001111", "province": "湖北省", "city": "神农架林区",
      "district": None, "detail": "新华路526号"}),
    ("金华 13331642348 湖北十堰竹山县学府路157号",  # a name that is also a city
     {"name": "金华", "phone": "13331642348", "province": "湖北省", "city": "十堰市",
      "district": "竹山县", "detail": "学府路157号"}),
    ("收货人: 欧阳娜娜, 手机号码: 138-1234-5678, 所在地区: 广东省 东莞市 长安镇, "
     "详细地址: 乌沙社区兴发路8号, 邮编: 523850",
     {"name": "欧阳娜娜", "phone": "13812345678", "province": "广东省", "city": "东莞市",
      "district": "长安镇", "detail": "乌沙社区兴发路8号", "postal_code": "523850"}),
])
def test_replies_in_the_shapes_buyers_use(text: str, expect: dict[str, str | None]) -> None:
    assert wrong_fields(text, expect) == []
    assert parse_reply(text).confidence >= 0.8


def test_what_fits_nowhere_is_kept_and_lowers_the_confidence() -> None:
    parsed = parse_reply("请尽快发货 谢谢 13812345678 浙江省杭州市西湖区文三路100号 张三")
    assert parsed.name == "张三" and parsed.district == "西湖区"
    assert "请尽快发货" in parsed.unparsed and "谢谢" in parsed.unparsed
    assert parsed.confidence < 1.0
    nothing = parse_reply("你好")
    assert nothing.phone is None and nothing.province is None and nothing.confidence <= 0.5
    assert parse_reply("").as_dict()["confidence"] == 0.0
