"""A realistic synthetic book of business, for benchmarks and load tests (never real people).

`write_book(out, customers=N)` writes staff, customers, family (about 2.5 a customer), policies
(about 3 a customer, mixed products, frequencies and statuses), claims (about 1 in 20 policies)
and circles (a group for half the families), all valid for `corecircle import`.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

from storage.book.parse import REQUIRED

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN_M = "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林欢阳建国志红"
GIVEN_F = "芳娜敏静丽艳娟霞秀燕玲桂丹萍红玉兰英梅琳雪倩婷慧颖莉佳琪晶洁"
PRODUCTS = (
    ("康宁终身重大疾病保险", 300_000, 6_000), ("安心百万医疗保险", 2_000_000, 800),
    ("畅行意外伤害保险", 500_000, 300), ("金福年金保险", 200_000, 12_000),
    ("智慧星少儿教育年金", 150_000, 8_000), ("鑫享终身寿险", 1_000_000, 15_000),
    ("守护定期寿险", 800_000, 1_800), ("福寿养老年金保险", 300_000, 20_000),
)
FREQUENCIES = ("年缴",) * 6 + ("月缴", "季缴", "半年缴", "趸缴")
POLICY_STATUSES = ("有效",) * 16 + ("宽限期", "宽限期", "失效", "终止")
CLAIM_STATUSES = ("已报案", "审核中", "待补材料", "已结案", "已赔付", "拒赔")
REGIONS = ("110105", "310104", "440106", "330106", "510107", "320102", "420106", "610113")
_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(rng: random.Random, born: date) -> str:
    body = f"{rng.choice(REGIONS)}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, _W, strict=True)) % 11]


def _name(rng: random.Random, male: bool, surname: str | None = None) -> str:
    given = GIVEN_M if male else GIVEN_F
    return (surname or rng.choice(SURNAMES)) + "".join(
        rng.choice(given) for _ in range(rng.choice((1, 2))))


def _born(rng: random.Random, low: int, high: int, today: date) -> date:
    return today - timedelta(days=rng.randrange(low * 365, high * 365))


def _phone(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"


class _Out:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, IO[str]] = {}
        self.writers: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def row(self, kind: str, values: list[object]) -> None:
        if kind not in self.writers:
            f = (self.folder / f"{kind}.csv").open("w", encoding="utf-8", newline="")
            self.files[kind] = f
            self.writers[kind] = csv.writer(f)
            self.writers[kind].writerow(_COLUMNS[kind])
            self.counts[kind] = 0
        self.writers[kind].writerow(["" if v is None else v for v in values])
        self.counts[kind] += 1

    def close(self) -> None:
        for f in self.files.values():
            f.close()


_COLUMNS = {
    **{k: list(v) for k, v in REQUIRED.items()},
    "family": [*REQUIRED["family"], "authorized_scopes", "authorized_until"],
    "policies": [*REQUIRED["policies"], "survival_benefit_date", "survival_benefit_amount"],
    "customers": [*REQUIRED["customers"], "wechat_openid"],
}


def write_book(
    out: Path, *, customers: int, seed: int = 1, agents: int | None = None,
    today: date | None = None,
) -> dict[str, int]:
    """Writes the six files into `out`; returns how many rows each has."""
    rng = random.Random(seed)  # noqa: S311 - reproducible fake people, not secrets
    today = today or date.today()
    out.mkdir(parents=True, exist_ok=True)
    n_agents = agents or max(1, customers // 400)
    w = _Out(out)
    try:
        for sup in range(max(1, n_agents // 8)):
            w.row("staff", [f"sup{sup:03d}", _name(rng, rng.random() < 0.5), "supervisor", "",
                            f"团队{sup:03d}"])
        for a in range(n_agents):
            w.row("staff", [f"agent{a:04d}", _name(rng, rng.random() < 0.4), "agent",
                            f"sup{a % max(1, n_agents // 8):03d}",
                            f"团队{a % max(1, n_agents // 8):03d}"])
        for _ in _customers(w, rng, customers, n_agents, today):
            pass
    finally:
        w.close()
    return dict(w.counts)


def _customers(w: _Out, rng: random.Random, n: int, n_agents: int, today: date
               ) -> Iterator[None]:
    policy_seq = claim_seq = 0
    for i in range(n):
        cno, male = f"C{i + 1:08d}", rng.random() < 0.5
        surname = rng.choice(SURNAMES)
        born = _born(rng, 25, 60, today)
        agent = f"agent{i % n_agents:04d}"
        w.row("customers", [cno, f"m{cno}", _name(rng, male, surname), "男" if male else "女",
                            born.isoformat(), _phone(rng), id_number(rng, born), agent,
                            f"o-{cno}" if rng.random() < 0.3 else ""])
        family: list[str] = []
        spouse = "法定"  # no spouse: the legal heirs
        relations = []
        if rng.random() < 0.75:
            relations.append(("配偶", not male, 25, 60))
        relations += [("子女", rng.random() < 0.5, 1, 25)] * rng.choice((0, 1, 1, 2))
        relations += [("父母", rng.random() < 0.5, 55, 85)] * rng.choice((0, 0, 1, 2))
        for k, (rel, fmale, low, high) in enumerate(relations):
            mid = f"f{cno}-{k}"
            fborn = _born(rng, low, high, today)
            consent = rel == "配偶" and rng.random() < 0.4
            fname = _name(rng, fmale, surname if rel == "子女" else None)
            if rel == "配偶":
                spouse = f"{fname}:配偶:100%"
            w.row("family", [mid, cno, fname, rel, "男" if fmale else "女", fborn.isoformat(),
                             _phone(rng) if rel != "子女" else "",
                             "policy,claim" if consent else "",
                             (today + timedelta(days=365 * 3)).isoformat() if consent else ""])
            family.append(mid)
        for _ in range(rng.choice((1, 2, 3, 3, 4, 5))):
            policy_seq += 1
            product, sum_assured, premium = rng.choice(PRODUCTS)
            insured = cno if not family or rng.random() < 0.6 else rng.choice(family)
            effective = today - timedelta(days=rng.randrange(30, 365 * 12))
            pno = f"P{policy_seq:010d}"
            freq = rng.choice(FREQUENCIES)
            survival = "年金" in product and rng.random() < 0.5
            w.row("policies", [
                pno, cno, product, insured, effective.isoformat(), sum_assured,
                premium, freq, 1 if freq == "趸缴" else rng.choice((10, 15, 20, 30)),
                "" if freq == "趸缴" else (today + timedelta(days=rng.randrange(-20, 365))
                                          ).strftime("%Y/%-m/%-d"),
                rng.choice(POLICY_STATUSES), spouse,
                round(premium * rng.uniform(0.5, 8), 2), today.replace(day=1).isoformat(),
                (effective + timedelta(days=365 * 5)).isoformat() if survival else "",
                round(sum_assured * 0.05, 2) if survival else "",
            ])
            if rng.random() < 0.05:
                claim_seq += 1
                submitted = today - timedelta(days=rng.randrange(1, 200))
                w.row("claims", [f"L{claim_seq:010d}", pno, rng.choice(CLAIM_STATUSES),
                                 rng.randrange(500, 80_000), submitted.isoformat(),
                                 (submitted + timedelta(days=rng.randrange(0, 30))).isoformat(),
                                 ""])
        if rng.random() < 0.5:
            w.row("circles", [f"g-{cno}", cno, agent, "wecom" if rng.random() < 0.5 else "webhook",
                              ""])
        yield None
