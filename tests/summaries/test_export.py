"""The CSV export opens in Excel: UTF-8 with a BOM, the documented columns, masked text."""

from __future__ import annotations

import csv
import io

from tests.summaries.conftest import DAY, Day
from tests.summaries.test_day_summary import PHONE, _a_good_day

HEADERS = [
    "日期", "客户群ID", "客户群", "代理人", "客户提问", "助手解答", "转人工",
    "首次响应中位数（分钟）", "解决用时中位数（分钟）", "超时工单", "承诺数", "按时兑现",
    "逾期兑现", "逾期未兑现", "未到期", "投诉风险", "无人回应", "待处理", "平均评分", "服务小结",
]


def test_the_csv_has_a_bom_the_documented_columns_and_one_row_per_circle_and_day(
    day: Day,
) -> None:
    _a_good_day(day)
    day.at(8, 0, DAY.replace(day=4))
    r = day.get("/api/v1/summaries/export.csv", "admin",
                **{"from": "2026-03-02", "to": "2026-03-04"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == HEADERS
    assert [(row[0], row[1]) for row in rows[1:]] == [
        ("2026-03-02", "demo-family"), ("2026-03-02", "family-b"),
        ("2026-03-03", "demo-family"), ("2026-03-03", "family-b"),
        ("2026-03-04", "demo-family"), ("2026-03-04", "family-b"),
    ]
    good = dict(zip(HEADERS, rows[3], strict=True))
    assert {k: good[k] for k in ("客户群", "代理人", "客户提问", "助手解答", "转人工",
                                 "首次响应中位数（分钟）", "解决用时中位数（分钟）", "超时工单",
                                 "承诺数", "按时兑现", "逾期未兑现", "投诉风险", "无人回应",
                                 "待处理", "平均评分")} == {
        "客户群": "王建国家庭服务群", "代理人": "李娜", "客户提问": "3", "助手解答": "1",
        "转人工": "1", "首次响应中位数（分钟）": "20.0", "解决用时中位数（分钟）": "300.0",
        "超时工单": "0", "承诺数": "1", "按时兑现": "1", "逾期未兑现": "0", "投诉风险": "0",
        "无人回应": "0", "待处理": "0", "平均评分": "5.0",
    }
    assert good["服务小结"].startswith("【2026年3月3日服务小结】王建国家庭服务群\n今天客户提问3次")
    assert PHONE not in r.content.decode("utf-8-sig")
    quiet = dict(zip(HEADERS, rows[1], strict=True))
    assert (quiet["客户提问"], quiet["首次响应中位数（分钟）"], quiet["平均评分"]) == ("0", "", "")


def test_an_agent_exports_only_their_circles_and_bad_ranges_are_refused(day: Day) -> None:
    day.at(8, 0, DAY.replace(day=4))
    r = day.get("/api/v1/summaries/export.csv", "agent-b",
                **{"from": "2026-03-03", "to": "2026-03-03"})
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row[1] for row in rows[1:]] == ["family-b"]
    bad = day.get("/api/v1/summaries/export.csv", **{"from": "2026-03-03", "to": "2026-01-01"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "RANGE_INVERTED")
    missing = day.get("/api/v1/summaries/export.csv", **{"from": "2026-03-03"})
    assert missing.status_code == 422
