"""Support: how many training shipments a model saw per channel x value band x destination tier.

A tree model answers for any channel, but where the history holds few comparable
shipments (a channel sellers rarely used for valuable goods, say) the answer is mostly
extrapolation. The model stores these counts (in its pipeline file, so the manifest
checksums and the registry digest cover them) and the service flags an answer that rests on
fewer than ``settings.support_min`` of them as ``uncertain``.

The cells are coarse on purpose: value bands whose edges are where the risks change (theft
grows with value on weakly tracked channels; customs rejects DDU parcels above a few hundred
USD) and the destination's risk tier (1-3), so a cell means "shipments like this one".

Besides shipments, each cell stores its training events per outcome: for a rare event (a
loss rate of 0.3 % on express) thousands of shipments still hold only a handful of losses,
and it is the events that pin a rate down. ``benchmarks/counterfactual_calibration.py``
measures the counterfactual calibration per cell against its event count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

VALUE_BAND_EDGES_USD: tuple[float, ...] = (25.0, 100.0, 300.0, 500.0)
"""Upper edges (exclusive) of the declared-value bands, in USD; the last band is open."""
VALUE_BANDS: tuple[str, ...] = ("<25", "25-100", "100-300", "300-500", ">=500")
"""Band labels, one per band, in value order."""
TIERS: tuple[int, ...] = (1, 2, 3)


def value_band(value_usd: Any) -> np.ndarray:
    """Band index (0..len(VALUE_BANDS)-1) of each declared value in USD (NaN -> band 0)."""
    values = np.asarray(value_usd, dtype=np.float64)
    bands = np.searchsorted(_EDGES, values, side="right")
    return np.where(values == values, bands, 0)  # NaN sorts last: its band is 0


_EDGES = np.asarray(VALUE_BAND_EDGES_USD)


def cell_key(channel_id: str, band: int, tier: int) -> str:
    """The stored key of one cell: ``<channel>|<band label>|tier<tier>``."""
    return f"{channel_id}|{VALUE_BANDS[int(band)]}|tier{int(tier)}"


def count_cells(
    channel_ids: Any, value_usd: Any, tiers: Any, weights: Any = None
) -> dict[str, int]:
    """Shipments per cell (or the sum of ``weights``, e.g. an event's 0/1 label), for the
    cells that occur, as plain JSON-ready data."""
    bands = value_band(value_usd)
    keys = [
        cell_key(c, b, t)
        for c, b, t in zip(
            np.asarray(channel_ids, dtype=object).tolist(),
            bands.tolist(),
            np.asarray(tiers, dtype=np.int64).tolist(),
            strict=True,
        )
    ]
    found, inverse = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    counts = np.bincount(inverse, weights=weights, minlength=len(found))
    return {str(k): round(n) for k, n in zip(found.tolist(), counts.tolist(), strict=True)}


def lookup(
    support: Mapping[str, int] | None, channel_ids: Any, value_usd: Any, tiers: Any
) -> np.ndarray:
    """Support of each (channel, value, tier) triple, element-wise over same-shape arrays.

    -1 where the model stores no counts (a model trained before support was recorded):
    unknown, never "uncertain"."""
    ids = np.asarray(channel_ids, dtype=object)
    if support is None:
        return np.full(ids.shape, -1, dtype=np.int64)
    bands = np.broadcast_to(value_band(value_usd), ids.shape)
    tiers = np.broadcast_to(np.asarray(tiers, dtype=np.int64), ids.shape)
    out = np.fromiter(
        (
            support.get(cell_key(c, b, t), 0)
            for c, b, t in zip(
                ids.ravel().tolist(), bands.ravel().tolist(), tiers.ravel().tolist(), strict=True
            )
        ),
        dtype=np.int64,
        count=ids.size,
    )
    return out.reshape(ids.shape)


class SupportGrid:
    """Every stored cell in dense arrays (channel x band x tier), built once per model.

    The answer path looks support up on every request: a per-cell string key per channel
    cost more than the model call. Here a request costs one dict lookup per channel and one
    fancy index; a channel or tier the model never saw has support 0, as in :func:`lookup`.
    """

    def __init__(self, tables: Sequence[Mapping[str, int]]) -> None:
        cells = [(key.split("|"), key) for key in set().union(*tables)]
        channels = sorted({parts[0] for parts, _ in cells})
        self.index = {c: i for i, c in enumerate(channels)}
        band_of = {label: b for b, label in enumerate(VALUE_BANDS)}
        shape = (len(tables), len(channels) + 1, len(VALUE_BANDS), len(TIERS))
        self.counts = np.zeros(shape, dtype=np.int64)  # the last channel row: unknown -> 0
        for (channel, band, tier), key in cells:
            t = int(tier.removeprefix("tier")) - TIERS[0]
            if 0 <= t < len(TIERS) and band in band_of:
                at = (self.index[channel], band_of[band], t)
                for k, table in enumerate(tables):
                    self.counts[(k, *at)] = table.get(key, 0)

    def lookup(self, channel_ids: Any, value_usd: Any, tiers: Any) -> np.ndarray:
        """(len(tables), n, K) counts of (n, K) channel ids, (n,) values and (n,) tiers."""
        ids = np.asarray(channel_ids, dtype=object)
        unknown = len(self.index)
        codes = np.fromiter(
            (self.index.get(c, unknown) for c in ids.ravel().tolist()), np.int64, ids.size
        ).reshape(ids.shape)
        bands = value_band(value_usd).reshape(-1, 1)
        t = np.asarray(tiers, dtype=np.int64).reshape(-1, 1) - TIERS[0]
        if t.min(initial=0) < 0 or t.max(initial=0) >= len(TIERS):  # a tier never stored
            codes = np.where((t >= 0) & (t < len(TIERS)), codes, unknown)
            t = np.clip(t, 0, len(TIERS) - 1)
        return self.counts[:, codes, bands, t]
