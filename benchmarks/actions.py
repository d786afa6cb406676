"""Actions with a measured effect (issue 17 "Decisions II", acceptance 3), on the champion.

The same checks as ``tests/decisions/test_actions.py``, on the bench champion (the main
job's model) instead of the small session model: 10,000 FRESH simulated orders (a seed no
test or other benchmark uses) through the one scoring path with the seller's own channel,
their actions measured (:func:`measured_actions`, one call), then every applicable action
applied here by hand and re-scored (one call). Figures: shipments with a recommendation,
actions applicable and shown per code, contradictions (must be 0), the largest gap between a
stated saving and the re-scored difference (must be 0 to the cent) and applicable actions
above the threshold that are not shown (must be 0).

    uv run --frozen python benchmarks/actions.py [--rows 10000]

Writes ``benchmarks/results/actions.json``.
"""

from __future__ import annotations

import argparse
from collections import Counter

import common

FRESH_SEED = 90_103
ROWS = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    args = parser.parse_args()
    common.configure_env()
    from shiprisk.data.catalogs import load_catalog
    from shiprisk.data.contract import SHIPMENT_FIELDS
    from shiprisk.data.simulator import simulate
    from shiprisk.decisions.action_savings import measured_actions, recommended_shipments
    from shiprisk.decisions.actions import SWITCH_CHANNEL, applicable
    from shiprisk.decisions.costs import SellerCosts, cents
    from shiprisk.decisions.scoring import score
    from shiprisk.models.risk_model import RiskModel

    report = common.Report("actions", "Actions with a measured effect (issue 17, acceptance 3)")
    champion = common.ensure_champion()
    model = RiskModel.load(champion.model_dir)
    catalog, costs = load_catalog(), SellerCosts()
    frame = simulate(args.rows, seed=FRESH_SEED)
    records = frame[list(SHIPMENT_FIELDS)].to_dict("records")
    chosen = frame["channel_id"].tolist()
    base = score(model, catalog, records, costs, chosen=chosen)
    shipments = recommended_shipments(base, records, chosen=chosen)
    found = dict(
        zip(
            shipments,
            measured_actions(model, catalog, list(shipments.values()), costs),
            strict=True,
        )
    )

    # Independently: every applicable action applied by hand, re-scored in one call.
    variants, where, lists = [], [], []
    for i in shipments:
        record, ids = records[i], base.ids_of(i)
        rec_id = ids[int(base.decision.recommended[i])]
        destination = catalog.destination_by_country.get(record["destination_country"])
        for change in applicable(record, destination):
            variant = {**record, change.field: change.value}
            if change.code == "ship_ddp":
                variant["duties_absorbed"] = True
            variants.append(variant)
            where.append((i, change.code))
            lists.append([{"channel_id": rec_id}])
        own = ids.index(chosen[i]) if chosen[i] in ids else -1
        if chosen[i] != rec_id and own >= 0 and base.decision.allowed[i, own]:
            variants.append(record)
            where.append((i, SWITCH_CHANNEL))
            lists.append([{"channel_id": chosen[i]}])
    again = score(model, catalog, variants, costs, candidates=lists).decision.expected_cost
    truth = {}
    for (i, code), cost in zip(where, again[:, 0].tolist(), strict=True):
        ours = cents(shipments[i].expected_cost)
        truth[i, code] = cents(cost - ours) if code == SWITCH_CHANNEL else cents(ours - cents(cost))

    threshold = costs.action_min_saving_usd
    stated = {(i, a.code): a.saving_usd for i, acts in found.items() for a in acts}
    contradictions = 0
    for i, acts in found.items():
        rec_id = base.ids_of(i)[int(base.decision.recommended[i])]
        name = catalog.channels[catalog.channel_index[rec_id]].name
        for a in acts:
            if a.code == SWITCH_CHANNEL:
                contradictions += chosen[i] == rec_id or not a.text.startswith(f"Ship on {name}")
    gap = max((abs(stated[k] - truth.get(k, float("inf"))) for k in stated), default=0.0)
    missing = sum(1 for k, v in truth.items() if v > threshold and k not in stated)
    applied, shown = Counter(c for _, c in truth), Counter(c for _, c in stated)
    per_code = {c: {"applicable": applied[c], "shown": shown[c]} for c in sorted(applied)}
    report.details.update(
        champion_version=champion.version,
        fresh_seed=FRESH_SEED,
        rows=args.rows,
        threshold_usd=threshold,
        per_code=per_code,
        shipments_with_actions=sum(1 for acts in found.values() if acts),
    )
    report.figure("shipments", "fresh shipments", float(args.rows), fmt="{:,.0f}")
    report.figure("recommended", "with a recommendation", float(len(shipments)), fmt="{:,.0f}")
    for code, n in per_code.items():
        label = f"{code}: shown (of {n['applicable']:,} applicable)"
        report.figure(f"shown_{code}", label, float(n["shown"]), fmt="{:,.0f}")
    report.figure("contradictions", "contradicting actions", float(contradictions), target=0)
    report.figure("max_gap_usd", "max |stated - re-scored| saving", gap, "USD", target=0.0)
    report.figure("missing", "applicable above the threshold, not shown", float(missing), target=0)
    report.write()


if __name__ == "__main__":
    main()
