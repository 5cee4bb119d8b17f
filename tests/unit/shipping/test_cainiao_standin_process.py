"""`python -m shipping.standin`: the platforms' stand-in gateway as a process that also answers
Cainiao's waybill calls (`python -m platforms.standin` alone does not load them)."""

from __future__ import annotations

import json
import subprocess
import sys

from platforms.top import TopClient
from tests.harness import ROOT


def test_the_standin_process_issues_and_cancels_cainiao_waybills() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipping.standin", "--platform", "taobao", "--app-key", "k1",
         "--app-secret", "secret-1", "--session", "sess-1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[:2] == ["standin", "taobao"], line
        top = TopClient(api_url=line[2], app_key="k1", app_secret="secret-1", session="sess-1")
        request = {"cp_code": "ZTO", "sender": {}, "trade_order_info_dtos": [
            {"object_id": "pcl-X-1", "order_info": {"trade_order_list": ["X"]},
             "package_info": {"id": "pcl-X-1", "items": []},
             "recipient": {"address": {"province": "浙江省"}}}]}
        params = {"param_waybill_cloud_print_apply_new_request": json.dumps(request)}
        first = top.call("cainiao.waybill.ii.get", params)
        [answer] = first["modules"]["waybill_cloud_print_response"]
        number = answer["waybill_code"]
        assert number.startswith("ZTO") and answer["object_id"] == "pcl-X-1"
        again = top.call("cainiao.waybill.ii.get", params)  # the same object: the same number
        assert again["modules"]["waybill_cloud_print_response"][0]["waybill_code"] == number
        cancelled = top.call("cainiao.waybill.ii.cancel", {"cp_code": "ZTO", "waybill_code": number})
        assert cancelled["cancel_result"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=10)
