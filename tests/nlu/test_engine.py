"""The intent engine as a customer in a family group meets it: what it understands, what it
leaves alone, and that no message can break it. Timing lives in benchmarks/nlu.py, not here."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.nlu.engine import MAX_PARSE_CHARS, OUT_OF_SCOPE, IntentEngine, Parse, Tokenizer
from bot.nlu.normalize import normalize
from storage.scripts import ScriptLibrary

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Monday

# Phrasings written for this test, not copied from scripts_zh (see test_phrasings_are_new).
TYPICAL = [
    ("@小助手 我家那口子的保费下个月几号扣啊", "premium.due"),
    ("今年那份重疾险的保费要交多少钱啊", "premium.due"),
    ("保费能不能用微信付啊 我不想绑卡", "premium.how_to_pay"),
    ("保费忘了交 已经过了十几天了 保单还有效吗", "premium.grace_period"),
    ("帮我看看我名下一共有几份保单", "policy.list"),
    ("我那份年金现在的现金价值是多少", "policy.cash_value"),
    ("保单能借钱吗 利息怎么算", "policy.loan"),
    ("保单失效快一年了 还能恢复吗", "policy.reinstate"),
    ("这份保险我不想要了 帮我办退保", "policy.surrender"),
    ("前天刚签的保单 犹豫期内退能全退吗", "policy.cooling_off"),
    ("受益人想改成我小女儿 要怎么办", "change.beneficiary"),
    ("我手机号换了 保单上的号码帮我改一下", "change.contact"),
    ("扣保费的那张银行卡我要换成招行的", "change.bank_account"),
    ("住院出来了 理赔该怎么申请啊", "claim.how_to"),
    ("理赔要准备哪些材料 发票要原件吗", "claim.documents"),
    ("上个月提交的理赔 现在审核到哪一步了", "claim.status"),
    ("我爸今天早上突然脑梗 送医院了", "claim.report"),
    ("甲状腺结节做手术 我的保险能赔吗", "coverage.question"),
    ("想给刚出生的女儿买份保险 有什么推荐", "product.consult"),
    ("单位让我交去年保险的缴费凭证 能帮忙出一份吗", "invoice.request"),
    ("明天下午三点能给我打个电话吗 想聊聊保单", "appointment.book"),
    ("别让机器人回了 我要找李娜本人", "human.request"),
    ("理赔拖了两个月还没结果 我要投诉你们", "complaint"),
    ("听说保单送体检 在哪里约 我想带我妈去做", "value_added.medical"),
    ("上次说帮我改地址的事 办好了没", "followup.check"),
    ("哈喽 小助手 周一好呀", "chitchat.greet"),
    ("好滴 我看明白了 谢谢你哈", "chitchat.thanks"),
    ("小助手 你是真人还是机器人啊", "chitchat.bot_identity"),
    (  # a voice message, transcribed as one run-on
        "那个 嗯 小助手啊 我想问一下 就是我老婆那个保险 今年的保费是不是这个月要扣了 "
        "大概扣多少钱 我好提前往卡里存点",
        "premium.due",
    ),
]

# Insurance words, hospitals and money in family chatter: none of it is a request to us.
HARD_NEGATIVES = [
    "今晚回家吃饭吗 我买了条鱼",
    "新闻说有家保险公司被罚款了",
    "车险今年续保贵了好几百 要不要换一家",
    "姥爷的腿恢复得不错 医生说下个月能拆钢板",
    "医保卡在手机上怎么激活 教教咱爸",
    "燃气费又涨了 这个月交了两百多",
    "快递放门口了 下班谁顺路拿上来",
    "谢谢二姨 给孩子的新衣服收到了 很合身",
]

JUNK = [
    "",
    "   ",
    "😂😂😂",
    "👍🙏",
    "[微笑][捂脸]",
    "。。。？？？！！！",
    "~~~ -_- ...",
    "@小助手",
    "\u200b\u202e\u2066",
    "\x00\x01\x02\x7f",
    "\ud83d\ude00\udc00",  # lone surrogates from a broken client
    bytes(range(256)).decode("latin-1"),
    "ㅋㅋㅋㅋ 진짜 대박",
    "保" * 10_000,
    "明天下午三点" * 2_000,
    "退保 " * 3_000,
]


@pytest.fixture(scope="module")
def library() -> ScriptLibrary:
    return ScriptLibrary()


@pytest.fixture(scope="module")
def engine(library: ScriptLibrary) -> IntentEngine:
    return IntentEngine(library.examples(), library.root / "dict" / "insurance.txt")


def test_phrasings_are_new(library: ScriptLibrary) -> None:
    known = {normalize(t) for t, _ in library.examples()}
    assert not [t for t, _ in TYPICAL if normalize(t) in known]
    assert not [t for t in HARD_NEGATIVES if normalize(t) in known]


def test_engine_knows_every_intent(engine: IntentEngine, library: ScriptLibrary) -> None:
    assert set(engine.labels) == set(library.intents)
    assert {i for _, i in TYPICAL} == set(library.intents) - {OUT_OF_SCOPE}


@pytest.mark.parametrize(("text", "intent"), TYPICAL)
def test_typical_phrasings(engine: IntentEngine, text: str, intent: str) -> None:
    parse = engine.parse(text, NOW)
    assert parse.intent == intent, parse.ranking[:3]
    assert parse.confidence >= 0.5


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_family_chatter_is_out_of_scope(engine: IntentEngine, text: str) -> None:
    parse = engine.parse(text, NOW)
    assert parse.intent == OUT_OF_SCOPE, parse.ranking[:3]


@pytest.mark.parametrize("text", JUNK, ids=lambda t: repr(t[:12]))
def test_junk_is_out_of_scope(engine: IntentEngine, text: str) -> None:
    parse = engine.parse(text, NOW)
    assert parse.intent == OUT_OF_SCOPE
    assert parse.text == text
    parse.as_rasa()  # serialisable shape, no exception


def test_long_message_is_classified_on_its_head(engine: IntentEngine) -> None:
    head = "帮我办一下退保 这份保险不想要了 " * (MAX_PARSE_CHARS // 16)
    text = head + "今晚吃什么 周末去哪玩 " * MAX_PARSE_CHARS
    assert len(head) >= MAX_PARSE_CHARS
    assert engine.parse(text[: 4 * MAX_PARSE_CHARS], NOW).intent == "policy.surrender"
    assert engine.parse(text, NOW).intent == OUT_OF_SCOPE  # a paste, not a chat message


def test_rasa_shape(engine: IntentEngine) -> None:
    text = "@小助手 明天下午三点给我回个电话 我的保单P20240001234"
    out = engine.parse(text, NOW).as_rasa()
    assert set(out) == {"text", "intent", "intent_ranking", "entities"}
    assert out["text"] == text
    assert set(out["intent"]) == {"name", "confidence"}
    assert out["intent"]["name"] == out["intent_ranking"][0]["name"]
    assert 0.0 <= out["intent"]["confidence"] <= 1.0
    confidences = [r["confidence"] for r in out["intent_ranking"]]
    assert confidences == sorted(confidences, reverse=True)
    assert 1 < len(confidences) <= 10
    assert sum(confidences) <= 1.0 + 1e-3
    for e in out["entities"]:
        assert set(e) == {"entity", "value", "start", "end"}
        assert text[e["start"] : e["end"]]


def test_entities_resolve_time_against_now(engine: IntentEngine) -> None:
    text = "@小助手 约明天下午三点给我打电话 保单号P20240001234"
    parse = engine.parse(text, NOW)
    assert parse.intent == "appointment.book"
    found = {e.entity: (e.value, text[e.start : e.end]) for e in parse.entities}
    assert found["time"] == ("2026-11-24T15:00:00+08:00", "明天下午三点")
    assert found["policy_no"] == ("P20240001234", "P20240001234")


def test_entities_follow_now(engine: IntentEngine) -> None:
    friday = datetime(2026, 11, 27, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    parse = engine.parse("明天上午十点打我电话", friday)
    assert [e.value for e in parse.entities if e.entity == "time"] == ["2026-11-28T10:00:00+08:00"]


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [
        ("我想辦理退保 這份保單不要了", "我想办理退保 这份保单不要了"),
        ("理賠進度到哪裡了", "理赔进度到哪里了"),
        ("續期保費幾號扣款", "续期保费几号扣款"),
        ("受益人想換成我兒子", "受益人想换成我儿子"),
    ],
)
def test_traditional_reads_like_simplified(
    engine: IntentEngine, traditional: str, simplified: str
) -> None:
    t, s = engine.parse(traditional, NOW), engine.parse(simplified, NOW)
    assert t.intent == s.intent != OUT_OF_SCOPE
    assert t.confidence == pytest.approx(s.confidence)


def test_mentions_emoji_and_width_do_not_change_the_intent(engine: IntentEngine) -> None:
    plain = engine.parse("保费什么时候扣", NOW)
    noisy = engine.parse("＠李娜 保费什么时候扣？？？😂😂", NOW)
    assert noisy.intent == plain.intent == "premium.due"


def test_classify_takes_normalized_text(engine: IntentEngine) -> None:
    ranking = engine.classify(normalize("帮我办一下退保"))
    assert ranking[0][0] == "policy.surrender"
    assert engine.classify("") == ((OUT_OF_SCOPE, 1.0),)


def test_parse_is_a_value(engine: IntentEngine) -> None:
    a, b = engine.parse("理赔要什么材料", NOW), engine.parse("理赔要什么材料", NOW)
    assert isinstance(a, Parse)
    assert a == b


def test_small_engines_train() -> None:
    examples = [(f"退保{i}", "policy.surrender") for i in range(3)]
    examples += [(f"今天天气{i}", OUT_OF_SCOPE) for i in range(3)]
    engine = IntentEngine(examples)
    assert engine.parse("我要退保", NOW).intent == "policy.surrender"
    assert engine.parse("天气真好", NOW).intent == OUT_OF_SCOPE


def test_tokenizer_uses_the_insurance_dictionary(library: ScriptLibrary) -> None:
    pytest.importorskip("jieba")  # the bench extra
    tokens = Tokenizer(library.root / "dict" / "insurance.txt")("我想问问现金价值和犹豫期")
    assert "现金价值" in tokens
    assert "犹豫期" in tokens
