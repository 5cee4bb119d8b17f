"""Makes tests/data/parse_set.jsonl: buyers' replies for the paste-to-fill parser, with the answer.

`python -m tests.data.make_parse_set [--count N] [--seed S]` writes N replies (default 1,200),
the same file for the same seed. Each is drawn from today's division list
(`intake.addresses.current_triples`, mainland: the county level, statistical areas, the
towns of the cities and units with no county level) with a made-up name, mobile number and
street detail, and written in one of ten shapes buyers use:

  spaced        张三 13812345678 浙江省杭州市西湖区文三路100号3幢501室
  labelled      收件人：张三 / 电话：… / 地址：…   (one per line)
  address_first 浙江省…501室，张三，13812345678
  lines         13812345678 / 张三 / 浙江省…      (one per line, phone first)
  glued         张三13812345678浙江省…             (no separator at all)
  no_province   张三 13812345678 杭州市西湖区…      (a city unique in the country)
  short_names   张三，13812345678，浙江杭州西湖区…   (stems; a municipality written once)
  platform      收货人: 张三, 手机号码: 138-1234-5678, 所在地区: 浙江省 杭州市 西湖区,
                详细地址: …, 邮编: 310000           (a municipality written twice)
  name_glued    浙江省…501室张三13812345678         (the name glued to the detail)
  phone_spaced  浙江省…501室 +86 138 1234 5678 张三

The answer is what the confirm form should hold: today's names (a municipality's city is
the municipality; a county-level unit the province runs itself is the city, its town the
district), the detail as written, the postal code where the reply gives one.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from intake.addresses import current_triples
from intake.divisions import divisions, stem

OUT = Path(__file__).resolve().parent / "parse_set.jsonl"
SHAPES = ("spaced", "labelled", "address_first", "lines", "glued", "no_province",
          "short_names", "platform", "name_glued", "phone_spaced")

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
                "蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱尹薛")
COMPOUND = ["欧阳", "司马", "上官", "诸葛", "慕容"]
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚英华玉萍红宇浩凯鹏欣怡婷雪慧晨佳琳思"
             "梓涵睿博嘉悦雨泽轩铭瑶诗晓志建国海燕")
MINORITY = ["阿依古丽·买买提", "热依拉·艾力", "巴特尔·布和", "古丽娜尔·吐尔逊"]
ROADS = ["人民路", "解放路", "建设路", "和平路", "新华路", "胜利路", "文化路", "学府路", "幸福街",
         "光明街", "滨江大道", "迎宾大道", "工业园路", "体育场路", "环城北路", "青年路", "育才路"]
ESTATES = ["阳光花园", "锦绣家园", "金色华庭", "翠苑", "香樟苑", "御景湾", "枫林小区", "紫荆公寓"]


def _name(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(MINORITY)
    surname = rng.choice(COMPOUND) if roll < 0.08 else rng.choice(SURNAMES)
    return surname + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))


def _phone(rng: random.Random) -> str:
    return "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))


def _detail(rng: random.Random) -> str:
    road = f"{rng.choice(ROADS)}{rng.randint(1, 999)}号"
    kind = rng.randrange(4)
    if kind == 0:
        return f"{road}{rng.randint(1, 30)}幢{rng.randint(1, 30)}0{rng.randint(1, 6)}室"
    if kind == 1:
        return f"{road}{rng.choice(ESTATES)}{rng.randint(1, 20)}栋{rng.randint(1, 4)}单元{rng.randint(101, 2808)}"
    if kind == 2:
        return f"{road}{rng.randint(1, 12)}号楼{rng.randint(101, 1808)}室"
    return road


def _unique_cities() -> set[str]:
    seen: Counter[str] = Counter()
    for province in divisions().root.children:
        for unit in province.children:
            seen[unit.name] += 1
            seen[stem(unit.name)] += 1
    return {name for name, n in seen.items() if n == 1}


def cases() -> list[dict[str, Any]]:
    """Every (province, city, district) the set draws from, with the answer's names."""
    out = []
    for province, city, district, kind in current_triples():
        if kind == "B":
            continue  # Hong Kong, Macau and Taiwan: not in this set (their own formats)
        if kind == "D":  # 湖北省 / 省直辖县级行政区划 / 仙桃市: the unit is the city
            out.append({"province": province, "city": district, "district": None})
        else:
            out.append({"province": province, "city": city, "district": district})
    return out


def reply(rng: random.Random, case: dict[str, Any], shape: str, unique: set[str]) -> dict[str, Any]:
    name, phone, detail = _name(rng), _phone(rng), _detail(rng)
    province, city, district = case["province"], case["city"], case["district"] or ""
    municipality = province == city
    region = province + ("" if municipality else city) + district
    full = region + detail
    postal = None
    if shape == "spaced":
        text = f"{name} {phone} {full}"
    elif shape == "labelled":
        text = f"收件人：{name}\n电话：{phone}\n地址：{full}"
    elif shape == "address_first":
        text = f"{full}，{name}，{phone}"
    elif shape == "lines":
        text = f"{phone}\n{name}\n{full}"
    elif shape == "glued":
        text = f"{name}{phone}{full}"
    elif shape == "no_province":
        head = province if municipality else city
        text = f"{name} {phone} {head}{district}{detail}"
    elif shape == "short_names":
        short = stem(province) + ("" if municipality else stem(city) if stem(city) in unique
                                  else city)
        text = f"{name}，{phone}，{short}{district}{detail}"
    elif shape == "platform":
        postal = f"{rng.randint(10, 86)}{rng.randint(0, 9999):04d}"
        dashed = f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"
        text = (f"收货人: {name}, 手机号码: {dashed}, 所在地区: {province} {city} {district}".rstrip()
                + f", 详细地址: {detail}, 邮编: {postal}")
    elif shape == "name_glued":
        text = f"{full}{name}{phone}"
    else:
        text = f"{full} +86 {phone[:3]} {phone[3:7]} {phone[7:]} {name}"
    return {"shape": shape, "text": text, "expect": {
        "name": name, "phone": phone, "province": province, "city": city,
        "district": case["district"], "detail": detail, "postal_code": postal}}


def make(count: int = 1200, seed: int = 21) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    unique = _unique_cities()
    pool = cases()
    out = []
    for i in range(count):
        shape = SHAPES[i % len(SHAPES)]
        case = rng.choice(pool)
        if shape == "no_province":
            while not (case["province"] == case["city"] or case["city"] in unique):
                case = rng.choice(pool)
        out.append(reply(rng, case, shape, unique))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows = make(args.count, args.seed)
    with args.out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} replies in {len(SHAPES)} shapes written to {args.out}")


if __name__ == "__main__":
    main()
