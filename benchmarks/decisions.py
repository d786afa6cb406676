"""Decision quality: the TRUE expected cost of the channel + insurance our policy picks.

Held-out shipments (a fresh draw of the default world) are priced on every catalog channel.
The simulator's ``counterfactual_probabilities`` gives the true p_loss / p_reject of every
shipment on every eligible channel, so each (channel, insure) option has a TRUE expected
cost (``policy.decide`` with the true probabilities; insured options only where insurance
is available). Then:

* oracle  = ``decide`` with the true probabilities (the best achievable choice);
* ours    = ``decide`` with the champion's probabilities; its channel AND its insure flag
  are then costed with the TRUE probabilities;
* reference = always the cheapest eligible channel (list price), no insurance.

Target: our policy captures >= 90 % of the oracle's saving over the reference
(``evaluate.expected_cost_regret``). Also reported: the same share against the cheapest
channel insured optimally (channel choice only), and the saving per shipment against naive
rules: cheapest tracked channel, always express (cheapest express), insure everything and
insure nothing (both on our channel).
"""

from __future__ import annotations

import common

ROWS = 50_000
SHARE_TARGET = 0.90


def main() -> None:
    import numpy as np

    common.configure_env()
    from shiprisk.data.catalogs import CHANNEL_TYPES, TRACKING_LEVELS, load_catalog
    from shiprisk.data.outcomes import EVENT_KEYS
    from shiprisk.data.physics import counterfactual_probabilities
    from shiprisk.decisions.costs import TODAYS_COST_MODEL, SellerCosts
    from shiprisk.decisions.policy import decide
    from shiprisk.decisions.scoring import score
    from shiprisk.features.pipeline import INPUT_FIELDS
    from shiprisk.models.risk_model import RiskModel
    from shiprisk.training.evaluate import expected_cost_regret

    report = common.Report("decisions", "Decisions: true expected cost of the policy's choices")
    champion = common.ensure_champion()
    model = RiskModel.load(champion.model_dir)
    frame = common.load_frame(ROWS, common.FRESH_SEEDS["decisions"])
    # Today's (pre-issue-16) cost model, so this figure stays comparable with its history;
    # the new cost model is measured by decisions_cost_model.py.
    catalog, costs = load_catalog(), SellerCosts(**TODAYS_COST_MODEL)
    n, c = len(frame), len(catalog.channel_ids)
    common.log(f"{n:,} held-out shipments x {c} channels")

    # The one scoring path (as /score and score-open): model probabilities and our decision.
    scored = score(model, catalog, frame[list(INPUT_FIELDS)], costs, num_threads=0)
    cands, ours_d = scored.table, scored.decision
    truth = counterfactual_probabilities(frame, catalog=catalog)
    eligible = cands.eligible
    agree = float((truth["eligible"] == eligible).mean())
    true_d = decide(cands, {o: truth[f"p_{o}"] for o in EVENT_KEYS}, costs)
    # TRUE cost of every (channel, insure) option: [uninsured | insured], NaN = not an option.
    uninsured = np.where(eligible, true_d.expected_cost_uninsured, np.nan)
    insured = np.where(eligible & cands.insurable, true_d.expected_cost_insured, np.nan)
    options = np.concatenate([uninsured, insured], axis=1)
    r = np.arange(n)

    def option(channel: np.ndarray, insure: np.ndarray) -> np.ndarray:
        return channel + c * (insure & cands.insurable[r, channel])

    oracle_ch = true_d.recommended
    ours_ch = ours_d.recommended
    if (oracle_ch < 0).any() or (ours_ch < 0).any():
        raise RuntimeError("a shipment got no recommendation")
    oracle = option(oracle_ch, true_d.insure[r, oracle_ch])
    ours = option(ours_ch, ours_d.insure[r, ours_ch])
    price = np.where(eligible, cands.price_usd, np.inf)
    cheapest = price.argmin(axis=1)
    no_insurance = np.zeros(n, dtype=bool)

    def cheapest_where(mask: np.ndarray) -> tuple[np.ndarray, float]:
        """Cheapest eligible channel meeting ``mask`` (C,), else the cheapest eligible."""
        p = np.where(mask[None, :], price, np.inf)
        pick = p.argmin(axis=1)
        has = np.isfinite(p[r, pick])
        return np.where(has, pick, cheapest), float(has.mean())

    tracking = catalog.channel_column("tracking_level")
    kind = catalog.channel_column("channel_type_code")
    tracked, tracked_cover = cheapest_where(tracking >= TRACKING_LEVELS["partial"])
    express, express_cover = cheapest_where(kind == CHANNEL_TYPES.index("express"))
    rules = {
        "cheapest channel, no insurance": option(cheapest, no_insurance),
        "cheapest channel, insured when it truly pays": option(
            cheapest, true_d.insure[r, cheapest]
        ),
        "cheapest tracked channel, no insurance": option(tracked, no_insurance),
        "always express (cheapest express), no insurance": option(express, no_insurance),
        "our channel, insure everything": option(ours_ch, np.ones(n, dtype=bool)),
        "our channel, insure nothing": option(ours_ch, no_insurance),
    }
    main_ref = expected_cost_regret(options, ours, rules["cheapest channel, no insurance"], oracle)
    channel_only = expected_cost_regret(
        options, ours, rules["cheapest channel, insured when it truly pays"], oracle
    )
    best_possible = np.nanmin(options, axis=1)
    cost_ours = options[r, ours]
    cost_oracle = options[r, oracle]
    savings = {}
    for name, idx in rules.items():
        cost = options[r, idx]
        savings[name] = {
            "mean_cost_usd": float(cost.mean()),
            "our_saving_per_shipment_usd": float((cost - cost_ours).mean()),
            "oracle_saving_per_shipment_usd": float((cost - cost_oracle).mean()),
            "share_of_oracle_saving": float((cost - cost_ours).sum() / (cost - cost_oracle).sum())
            if (cost - cost_oracle).sum() != 0
            else float("nan"),
        }

    report.details.update(
        rows=n,
        seed=common.FRESH_SEEDS["decisions"],
        channels=c,
        eligible_pairs=int(eligible.sum()),
        eligibility_agreement_with_simulator=agree,
        oracle_is_true_minimum=bool(np.allclose(cost_oracle, best_possible)),
        vs_cheapest_uninsured=main_ref,
        vs_cheapest_insured_optimally=channel_only,
        rules=savings,
        same_channel_as_oracle=float((ours_ch == oracle_ch).mean()),
        same_option_as_oracle=float((ours == oracle).mean()),
        insured_share={"ours": float((ours >= c).mean()), "oracle": float((oracle >= c).mean())},
        tracked_rule_coverage=tracked_cover,
        express_rule_coverage=express_cover,
        seller_costs=costs.model_dump(mode="json"),
    )
    print(
        f"\n{n:,} held-out shipments (seed {common.FRESH_SEEDS['decisions']}), "
        f"{int(eligible.sum()):,} eligible pairs:"
    )
    report.figure(
        "share_vs_cheapest",
        "share of oracle saving over cheapest channel captured",
        main_ref["share_of_oracle_saving"],
        target=SHARE_TARGET,
        op=">=",
        fmt="{:.3f}",
    )
    report.figure(
        "share_vs_cheapest_insured",
        "same, cheapest insured optimally (channel only)",
        channel_only["share_of_oracle_saving"],
        fmt="{:.3f}",
    )
    report.figure(
        "cost_ours",
        "true expected cost per shipment: our policy",
        main_ref["cost_chosen"],
        "USD",
        fmt="{:.3f}",
    )
    report.figure(
        "cost_oracle",
        "true expected cost per shipment: oracle",
        main_ref["cost_oracle"],
        "USD",
        fmt="{:.3f}",
    )
    report.figure(
        "regret", "regret per shipment vs oracle", main_ref["regret_chosen"], "USD", fmt="{:.4f}"
    )
    report.figure(
        "same_option",
        "shipments where ours = oracle (channel + insure)",
        float((ours == oracle).mean()),
        fmt="{:.3f}",
    )
    for i, (name, s) in enumerate(savings.items()):
        report.figure(
            f"saving_vs_rule_{i}",
            f"saving vs {name}",
            s["our_saving_per_shipment_usd"],
            "USD/shp",
            fmt="{:.3f}",
        )
    # Cross-check with the project's own evaluation (same definitions, separate code).
    from dataclasses import asdict

    from shiprisk.training.decision_eval import evaluate_decisions

    project = evaluate_decisions(frame, model, costs=costs, catalog=catalog, decline=False)
    report.details["project_evaluate_decisions"] = asdict(project)
    report.figure(
        "share_project_code",
        "same share by shiprisk.training.decision_eval (cross-check)",
        project.share_of_oracle_saving,
        fmt="{:.3f}",
    )
    if agree < 1.0:
        report.notes.append(
            f"catalog eligibility and the simulator's differ on {(1 - agree):.4%} of pairs"
        )
    report.notes.append(
        "Costs: today's (pre-issue-16) model, TODAYS_COST_MODEL (refund, goods 40 % of value, "
        "risk-neutral, no duties or claims); the new model: decisions_cost_model.py. "
        f"'Tracked' = partial or full tracking ({tracked_cover:.1%} of shipments have one "
        f"eligible, else the cheapest channel); express available for {express_cover:.1%}."
    )
    if report.missed():
        report.profiles["where the regret comes from"] = regret_breakdown(
            catalog, truth, scored.probs["loss"], oracle_ch, ours_ch, cost_ours - cost_oracle
        )
        print(
            f"\nwhere the regret comes from (target missed):\n"
            f"{report.profiles['where the regret comes from']}"
        )
    report.write()


def regret_breakdown(catalog, truth, m_loss, oracle_ch, ours_ch, regret) -> str:
    """Top (oracle channel, our channel) pairs by regret, and the loss-probability bias there."""
    import numpy as np
    import pandas as pd

    ids = np.asarray(catalog.channel_ids)
    r = np.arange(len(regret))
    df = pd.DataFrame(
        {
            "oracle": ids[oracle_ch],
            "ours": ids[ours_ch],
            "regret": regret,
            "p_loss_ours_ch_model/true": m_loss[r, ours_ch] / truth["p_loss"][r, ours_ch],
        }
    )
    bad = df[df["regret"] > 1e-9]
    top = (
        bad.groupby(["oracle", "ours"])
        .agg(
            regret_usd=("regret", "sum"),
            shipments=("regret", "size"),
            model_over_true_p_loss=("p_loss_ours_ch_model/true", "median"),
        )
        .sort_values("regret_usd", ascending=False)
        .head(8)
    )
    top["share_of_regret"] = top["regret_usd"] / df["regret"].sum()
    eligible = truth["eligible"]
    bias = pd.Series(
        np.nanmean(np.where(eligible, m_loss, np.nan), axis=0)
        / np.nanmean(truth["p_loss"], axis=0),
        index=ids,
    ).round(3)
    worst = np.sort(df["regret"].to_numpy())[::-1]
    return "\n".join(
        [
            f"regret {df['regret'].sum():,.0f} USD over {len(df):,} shipments; the worst 1 % of "
            f"shipments carry {worst[: max(len(df) // 100, 1)].sum() / df['regret'].sum():.0%}",
            "top (oracle, ours) channel pairs by regret:",
            top.round(3).to_string(),
            "mean model p_loss / mean true p_loss per channel, over every eligible pair:",
            bias.to_string(),
        ]
    )


if __name__ == "__main__":
    main()
