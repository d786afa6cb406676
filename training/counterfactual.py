"""Calibration on counterfactual channels: the model against the simulator's truth on EVERY
eligible channel, not only the one the historical seller picked.

The history is confounded (sellers ship valuable goods by express, cheap ones untracked), so
a model can be well calibrated on the channels actually used and still wrong on the ones a
recommendation would move a parcel to. Here fresh shipments are scored through the one
scoring path on every eligible channel and compared, per channel x value band, with the
true probabilities (``data/physics.py``); each cell also says how many events of that kind
the model's training slice held, so a ratio can be judged by its support.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shiprisk.data.catalogs import Catalog, load_catalog
from shiprisk.data.outcomes import EVENT_KEYS, LABEL_OF
from shiprisk.data.physics import counterfactual_probabilities
from shiprisk.decisions.costs import SellerCosts
from shiprisk.decisions.scoring import score
from shiprisk.models.risk_model import RiskModel
from shiprisk.models.support import VALUE_BANDS, value_band

SEGMENTS = {
    "all": None,
    "ddu>300_no_taxid": "DDU parcels over 300 USD to a country requiring a tax id, without one",
}
"""Rows of the table: every shipment, and the slice the evaluation found p_reject worst on."""


def _value_usd(frame: pd.DataFrame, catalog: Catalog) -> np.ndarray:
    return frame["declared_value"].to_numpy(dtype=float) * catalog.usd_rate(
        frame["currency"].to_numpy()
    )


def _segment_mask(frame: pd.DataFrame, value_usd: np.ndarray, catalog: Catalog) -> np.ndarray:
    requires = catalog.destination_column("requires_tax_id")[
        catalog.country_codes(frame["destination_country"].to_numpy())
    ]
    return (
        (frame["duties_terms"].to_numpy() == "DDU")
        & (value_usd > 300.0)
        & (requires > 0)
        & ~frame["recipient_tax_id_present"].to_numpy(dtype=bool)
    )


def training_events(train: pd.DataFrame, catalog: Catalog | None = None) -> pd.DataFrame:
    """Training shipments and events per (segment, channel, value band)."""
    catalog = catalog or load_catalog()
    value = _value_usd(train, catalog)
    base = pd.DataFrame(
        {
            "channel": train["channel_id"].astype(str).to_numpy(),
            "band": np.asarray(VALUE_BANDS)[value_band(value)],
            "shipments": 1,
            **{f"{o}_events": (train["outcome"] == LABEL_OF[o]).to_numpy() for o in EVENT_KEYS},
        }
    )
    parts = []
    for name in SEGMENTS:
        rows = base if name == "all" else base[_segment_mask(train, value, catalog)]
        g = rows.groupby(["channel", "band"]).sum(numeric_only=True)
        parts.append(g.assign(segment=name).reset_index())
    return pd.concat(parts).set_index(["segment", "channel", "band"])


def calibration_table(
    model: RiskModel,
    train: pd.DataFrame,
    fresh: pd.DataFrame,
    catalog: Catalog | None = None,
) -> pd.DataFrame:
    """Per (segment, channel, value band): scored pairs, mean predicted and mean true
    probability of each event, their ratio, and the training slice's event counts."""
    catalog = catalog or load_catalog()
    scored = score(model, catalog, fresh, SellerCosts(), num_threads=0)
    truth = counterfactual_probabilities(fresh, catalog=catalog)
    value = _value_usd(fresh, catalog)
    ok = scored.table.eligible & np.isfinite(truth[f"p_{EVENT_KEYS[0]}"])
    rows, cols = np.nonzero(ok)
    pairs = pd.DataFrame(
        {
            "channel": np.asarray(catalog.channel_ids, dtype=object)[cols],
            "band": np.asarray(VALUE_BANDS)[value_band(value)[rows]],
            "segment_hit": _segment_mask(fresh, value, catalog)[rows],
            **{f"pred_{o}": scored.probs[o][rows, cols] for o in EVENT_KEYS},
            **{f"true_{o}": truth[f"p_{o}"][rows, cols] for o in EVENT_KEYS},
        }
    )
    parts = []
    for name in SEGMENTS:
        sub = pairs if name == "all" else pairs[pairs["segment_hit"]]
        g = sub.groupby(["channel", "band"])
        means = g.mean(numeric_only=True).drop(columns="segment_hit")
        means["pairs"] = g.size()
        parts.append(means.assign(segment=name).reset_index())
    table = pd.concat(parts).set_index(["segment", "channel", "band"])
    for o in EVENT_KEYS:
        table[f"ratio_{o}"] = table[f"pred_{o}"] / table[f"true_{o}"]
    events = training_events(train, catalog)
    table = table.join(events, how="left").fillna({"shipments": 0})
    for o in EVENT_KEYS:
        table[f"{o}_events"] = table[f"{o}_events"].fillna(0).astype(int)
    table["shipments"] = table["shipments"].astype(int)
    return table


def out_of_band(
    table: pd.DataFrame, min_events: int, low: float, high: float, *, min_pairs: int = 0
) -> list[str]:
    """Cells with at least ``min_events`` training events of an outcome whose ratio for that
    outcome lies outside [low, high], as readable lines (empty: all within)."""
    bad = []
    for o in EVENT_KEYS:
        cells = table[(table[f"{o}_events"] >= min_events) & (table["pairs"] >= min_pairs)]
        for key, row in cells.iterrows():
            ratio = row[f"ratio_{o}"]
            if not low <= ratio <= high:
                bad.append(
                    f"{'/'.join(map(str, key))} p_{o}: {ratio:.3f} "
                    f"({int(row[f'{o}_events'])} events, {int(row['pairs'])} pairs)"
                )
    return bad
