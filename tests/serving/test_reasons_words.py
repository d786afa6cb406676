"""Reasons in the seller's words: the channel is compared with its alternative, and no reason
text leaks an internal term (engineered feature names, the time trend, model jargon)."""

from __future__ import annotations

import re

from shiprisk.data.contract import SHIPMENT_FIELDS
from shiprisk.data.outcomes import EVENTS
from shiprisk.features.definitions import FEATURES
from shiprisk.serving.explain import channel_comparison
from shiprisk.serving.schemas import ChannelScore, ScoreRequest

INTERNAL_TERMS = (
    *(f for f in FEATURES if "_" in f),  # engineered names: cod_x_risk_tier, log_value_usd...
    "trend",
    "over time",
    "log-odds",
    "logit",
    "feature",
    "months since",
    "weakness",
    "exposure",
)
N_SHIPMENTS = 400


def _responses(scorer, sim_frame):
    rows = sim_frame.sample(N_SHIPMENTS, random_state=5).to_dict("records")
    for row in rows:
        body = {f: row[f] for f in SHIPMENT_FIELDS if f != "channel_id"}
        body["order_id"] = "o1"
        yield scorer.score(ScoreRequest.model_validate(body))


def test_no_reason_uses_an_internal_term(scorer, sim_frame) -> None:
    texts = [r.text for answer in _responses(scorer, sim_frame) for r in answer.reasons]
    assert len(texts) > N_SHIPMENTS  # reasons were given
    pattern = re.compile("|".join(re.escape(t) for t in INTERNAL_TERMS), re.IGNORECASE)
    leaked = sorted({t for t in texts if pattern.search(t)})
    assert not leaked, leaked[:10]


def test_the_channel_reason_compares_the_recommendation_with_its_alternative(
    scorer, sim_frame
) -> None:
    compared = 0
    for answer in _responses(scorer, sim_frame):
        rec = answer.recommendation
        if rec is None:
            continue
        channel = [r for r in answer.reasons if r.factor == "channel"]
        others = [c for c in answer.channels if c.allowed and c.channel_id != rec.channel_id]
        assert len(channel) == (len(EVENTS) if others else 0), [r.text for r in channel]
        for reason in channel:
            assert reason.text.startswith(rec.channel_id) and " vs " in reason.text
            named = [c.channel_id for c in others if f"on {c.channel_id}," in reason.text]
            assert len(named) == 1, reason.text
            if rec.cheapest_channel_id != rec.channel_id:
                assert named[0] == rec.cheapest_channel_id and "the cheapest" in reason.text
            compared += 1
    assert compared > N_SHIPMENTS


MONEY_FIELDS = [n for n in ChannelScore.model_fields if n.endswith("_usd")]


def _row(cid: str, p_loss: float, p_reject: float, allowed: bool = True) -> ChannelScore:
    return ChannelScore(
        channel_id=cid,
        requested=False,
        eligible=True,
        allowed=allowed,
        p_loss=p_loss,
        p_reject=p_reject,
        insure=False,
        # money fields are always present in an answer (null where not priced)
        **dict.fromkeys(MONEY_FIELDS),
    )


def test_comparison_text_reads_like_the_issue_example() -> None:
    rows = [_row("cnpost_untracked", 0.24, 0.05), _row("cnpost_registered", 0.057, 0.06)]
    loss, reject = channel_comparison(rows, recommended=1, cheapest=0)
    assert loss.text == (
        "cnpost_registered: risk of being lost 5.7% vs 24% on cnpost_untracked, "
        "the cheapest channel"
    )
    assert loss.contribution < 0 < reject.contribution
    # the cheapest recommended: compared with the safest other allowed channel
    rows.append(_row("dhl_express", 0.004, 0.07))
    rows.append(_row("ems", 0.001, 0.001, allowed=False))
    loss, reject = channel_comparison(rows, recommended=0, cheapest=0)
    assert loss.text == (
        "cnpost_untracked (the cheapest channel): risk of being lost 24% vs 0.40% on "
        "dhl_express, which costs more than the risk it saves"
    )
    assert "the safest other channel" in reject.text
