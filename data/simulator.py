"""The simulated shipment world: draw histories whose true loss and rejection odds are known.

No real seller data exists, so we draw it. Outcomes come from :func:`true_probabilities`, a
function of the contract fields and the catalogs only, which means it can score any shipment
on any channel; a model can then be compared with the Bayes-optimal predictor and a channel
policy with an oracle (:func:`counterfactual_probabilities`).

The seller's historical channel choice is confounded on purpose (price, value, destination
and a latent urgency that never touches outcomes), like real histories. Everything is
vectorised numpy; a seed fixes the frame. Parameters live in :mod:`shiprisk.data.world`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from shiprisk.data.atomic import write_atomic
from shiprisk.data.catalogs import CHANNEL_TYPES, Catalog, bundled_catalog
from shiprisk.data.contract import (
    ADDRESS_QUALITIES,
    CURRENCIES,
    DUTIES_TERMS,
    GOODS_CATEGORIES,
    HISTORY_FIELDS,
    MARKETPLACES,
    OUTCOMES,
    PACKAGING_TYPES,
    PAYMENT_METHODS,
    SPECS,
)
from shiprisk.data.outcomes import DELIVERED as DELIVERED_LABEL
from shiprisk.data.outcomes import EVENTS, TRUTH_COLUMNS, Outcome
from shiprisk.data.physics import (
    YEAR_S,
    Shipments,
    country_codes,
    eligible_channels,
    lookup,
    probabilities,
    transit_bounds,
)
from shiprisk.data.world import LOCAL_CURRENCY, WorldParams, default_world, world_by_name

TRUE_COLUMNS = TRUTH_COLUMNS
"""Columns appended after ``HISTORY_FIELDS``: the probabilities outcomes were drawn from."""
CHUNK_ROWS = 200_000
"""Rows drawn per chunk (bounds memory; progress is reported per chunk)."""
PROGRESS_MIN_ROWS = 200_000
"""``generate_to_parquet`` shows a progress bar from this many rows on."""
_MAX_DECLARED = float(SPECS["declared_value"].le or np.inf)


# -- drawing shipments ---------------------------------------------------------------------


def _choice(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category per row from (n, K) row weights (need not be normalised)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(axis=1), probs.shape[1] - 1)


def _weights(mapping: dict, keys: tuple) -> np.ndarray:
    return np.array([float(mapping[k]) for k in keys])


def _draw_times(rng: np.random.Generator, n: int, world: WorldParams) -> np.ndarray:
    """Creation times (datetime64[s], UTC): monthly seasonality times yearly growth."""
    days = np.arange(
        np.datetime64(world.start_date), np.datetime64(world.end_date) + np.timedelta64(1, "D")
    )
    months = days.astype("datetime64[M]").astype(np.int64) % 12
    years = (days - days[0]).astype(np.int64) / 365.25
    weight = np.asarray(world.volume_by_month)[months] * world.volume_growth_per_year**years
    day = rng.choice(days, size=n, p=weight / weight.sum())
    seconds = rng.integers(0, 86_400, size=n)
    return day.astype("datetime64[s]") + seconds.astype("timedelta64[s]")


def _draw_dims(
    rng: np.random.Generator,
    weight: np.ndarray,
    goods: np.ndarray,
    packaging: np.ndarray,
    world: WorldParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dimensions consistent with weight, goods density and packaging (cm, 0.1 precision)."""
    n = len(weight)
    density = _weights(world.goods_density_kg_per_l, GOODS_CATEGORIES)[goods]
    volume = 1000.0 * weight / density * rng.lognormal(0.0, 0.25, n)  # cm^3
    flat = packaging <= PACKAGING_TYPES.index("poly_mailer")
    thickness = np.where(packaging == 0, rng.uniform(0.5, 2.5, n), rng.uniform(2.0, 8.0, n))
    thickness = np.maximum(thickness, volume / np.where(packaging == 0, 1200.0, 2500.0))
    area = volume / thickness
    flat_l = np.sqrt(area * rng.uniform(1.2, 1.6, n))
    side = np.cbrt(volume / (0.7 * 0.5))
    pad = np.where(packaging == PACKAGING_TYPES.index("reinforced_box"), 3.0, 2.0)
    box = (
        side * rng.uniform(0.9, 1.1, n) + pad,
        0.7 * side * rng.uniform(0.9, 1.1, n) + pad,
        0.5 * side * rng.uniform(0.9, 1.1, n) + pad,
    )
    length = np.where(flat, np.maximum(flat_l, 10.0), box[0])
    width = np.where(flat, np.maximum(area / flat_l, 7.0), box[1])
    height = np.where(flat, thickness, box[2])
    # keep every parcel within the largest express limits (longest 200 cm, girth 380 cm)
    longest = np.maximum(np.maximum(length, width), height)
    girth = longest + 2.0 * (length + width + height - longest)
    shrink = np.minimum(1.0, np.minimum(200.0 / longest, 380.0 / girth))
    return tuple(np.maximum(np.round(d * shrink, 1), 0.5) for d in (length, width, height))


def _draw_chunk(
    rng: np.random.Generator, n: int, world: WorldParams, catalog: Catalog
) -> pd.DataFrame:
    """Draw n shipments (no ids yet): fields, confounded channel choice, outcomes."""
    # where and when
    countries = tuple(world.destination_weights)
    unknown = set(countries) - set(catalog.countries)
    if unknown:
        raise ValueError(f"destination_weights names countries not in the catalog: {unknown}")
    dest_w = _weights(world.destination_weights, countries)
    dest = _choice(rng, np.broadcast_to(dest_w, (n, len(countries))))
    country = country_codes(np.asarray(countries, dtype=object)[dest], catalog)
    created = _draw_times(rng, n, world)
    col = catalog.destination_column
    risk = col("risk_tier").astype(np.int64)[country]
    regions = (*(d.region for d in catalog.destinations), "other")

    # what
    goods = _choice(
        rng,
        np.broadcast_to(
            _weights(world.goods_weights, GOODS_CATEGORIES), (n, len(GOODS_CATEGORIES))
        ),
    )
    items = 1 + rng.poisson(_weights(world.extra_items_mean, GOODS_CATEGORIES)[goods])
    item_scale = items.astype(float) ** world.items_value_elasticity
    v_med, v_sig = np.array([world.goods_value_usd[g] for g in GOODS_CATEGORIES], float).T
    w_med, w_sig = np.array([world.goods_weight_kg[g] for g in GOODS_CATEGORIES], float).T
    z_value = rng.standard_normal(n)
    rho = world.goods_value_weight_corr
    z_weight = rho * z_value + np.sqrt(1.0 - rho**2) * rng.standard_normal(n)
    true_value = v_med[goods] * np.exp(v_sig[goods] * z_value) * item_scale
    true_value = np.clip(true_value, 1.0, world.max_value_usd)
    weight = w_med[goods] * np.exp(w_sig[goods] * z_weight) * item_scale
    weight = np.round(np.clip(weight, 0.02, world.max_weight_kg), 3)
    pack_mix = np.array([world.packaging_mix[g] for g in GOODS_CATEGORIES], float)
    packaging = _choice(rng, pack_mix[goods])
    packaging = np.where((packaging == 0) & (weight > world.envelope_max_kg), 1, packaging)
    packaging = np.where((packaging == 1) & (weight > world.poly_mailer_max_kg), 2, packaging)
    dims = _draw_dims(rng, weight, goods, packaging, world)
    fragile = rng.random(n) < _weights(world.fragile_share, GOODS_CATEGORIES)[goods]
    wording = rng.random(n) < _weights(world.valuable_wording_share, GOODS_CATEGORIES)[goods]
    under = rng.random(n) < world.undervalue_share
    u_med, u_sig = world.undervalue_factor
    declared_usd = np.where(under, true_value * u_med * rng.lognormal(0.0, u_sig, n), true_value)
    declared_usd = np.maximum(declared_usd, 1.0)

    # currency: mostly USD, some local, a little CNY
    local = np.array(
        [CURRENCIES.index(LOCAL_CURRENCY.get(c, "USD")) for c in catalog.countries]
        + [CURRENCIES.index("USD")]
    )[country]
    u = rng.random(n)
    currency = np.where((u < world.local_currency_share) & (local != 0), local, 0)
    currency = np.where(u > 1.0 - world.cny_share, CURRENCIES.index("CNY"), currency)
    rates = np.array([catalog.currencies[c].usd_per_unit for c in CURRENCIES])
    too_big = declared_usd / rates[currency] > 0.5 * _MAX_DECLARED  # KRW, CLP, JPY...
    currency = np.where(too_big, CURRENCIES.index("USD"), currency)
    declared = np.maximum(np.round(declared_usd / rates[currency], 2), 0.01)
    value_usd = declared * rates[currency]

    # order and buyer
    mkt_keys = tuple(world.marketplace_mix)
    mkt_region = np.array(
        [mkt_keys.index(r) if r in mkt_keys else mkt_keys.index("other") for r in regions]
    )[country]
    marketplace = _choice(rng, np.array([world.marketplace_mix[k] for k in mkt_keys])[mkt_region])
    ddp_share = np.array(
        [world.ddp_share_by_region.get(r, world.ddp_share_by_region["other"]) for r in regions]
    )[country]
    is_ddu = rng.random(n) >= ddp_share
    requires_tax = col("requires_tax_id")[country] > 0
    tax_id = rng.random(n) < np.where(
        requires_tax, world.tax_id_share_required, world.tax_id_share_optional
    )
    repeat = rng.random(n) < world.repeat_buyer_share
    orders = np.where(repeat, np.minimum(rng.geometric(world.repeat_orders_p, n), 500), 0)
    cod_share = col("cod_share")[country]
    mean = world.buyer_refusal_base + world.buyer_refusal_cod_extra * cod_share
    k = world.buyer_refusal_concentration
    propensity = rng.beta(mean * k, (1.0 - mean) * k)
    refusals = rng.binomial(orders, propensity)
    addr_p = np.array([world.address_quality_by_tier[t] for t in (1, 2, 3)], float)
    address = _choice(rng, addr_p[risk - 1])
    remote = rng.random(n) < np.minimum(
        col("remote_share")[country] * world.remote_share_scale, 1.0
    )

    s = Shipments(
        country=country,
        goods=goods,
        packaging=packaging,
        address=address,
        is_cod=np.ones(n, bool),
        is_ddu=is_ddu,
        tax_id=tax_id,
        orders=orders.astype(float),
        refusals=refusals.astype(float),
        value_usd=value_usd,
        weight_kg=weight,
        dims_cm=dims,
        valuable_wording=wording,
        remote=remote,
        month=np.zeros(n, np.int64),
        years=np.zeros(n),
    )
    # COD where the buyer wants it and some COD channel takes the parcel, else prepaid
    wants_cod = rng.random(n) < np.minimum(cod_share * world.cod_share_scale, 1.0)
    is_cod = wants_cod & eligible_channels(s, catalog).any(axis=1)
    s = replace(s, is_cod=is_cod)
    eligible = eligible_channels(s, catalog)
    if not eligible.any(axis=1).all():
        raise RuntimeError("drew a shipment no channel accepts; check the world's caps")

    # the seller's channel choice: softmax over eligible channels, confounded
    zone = catalog.zone_of(country)
    price = catalog.price_usd(weight, dims, zone)
    lo, hi = transit_bounds(s, catalog)
    tracking = catalog.channel_column("tracking_level")
    is_express = catalog.channel_column("channel_type_code") == CHANNEL_TYPES.index("express")
    urgency = rng.standard_normal(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        utility = (
            world.choice_price_weight * np.log(price)
            + world.choice_tracking_value_weight
            * tracking[None, :]
            * np.log(true_value / world.choice_value_ref_usd)[:, None]
            + world.choice_urgency_weight * urgency[:, None] * -np.log((lo + hi) / 20.0)
            + lookup(world.choice_channel_bias, catalog.channel_ids, 0.0)[None, :]
            + lookup(world.choice_tier_express_bias, (1, 2, 3), 0.0)[risk - 1][:, None]
            * is_express[None, :]
        ) / world.choice_temperature
    utility = np.where(eligible, utility, -np.inf)
    soft = np.exp(utility - utility.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    floor = eligible / eligible.sum(axis=1, keepdims=True)
    channel = _choice(rng, (1.0 - world.choice_floor) * soft + world.choice_floor * floor)

    # outcomes from the true probabilities of the final contract fields
    month = created.astype("datetime64[M]").astype(np.int64) % 12
    years = (created - np.datetime64(world.drift_origin, "s")).astype(float) / YEAR_S
    s = replace(s, month=month, years=years)
    probs = {k: p[:, 0] for k, p in probabilities(s, channel[:, None], world, catalog).items()}
    u = rng.random(n)
    outcome = np.zeros(n, dtype=np.int64)  # codes index OUTCOMES: 0 delivered, then events
    cum = None
    for code, event in enumerate(EVENTS, start=1):
        cum = probs[event.key] if cum is None else cum + probs[event.key]
        outcome = np.where((outcome == 0) & (u < cum), code, outcome)
    roles = np.array(["", *(o.cost_role for o in EVENTS)], dtype=object)[outcome]
    lo_c = np.take_along_axis(lo, channel[:, None], axis=1)[:, 0].astype(np.int64)
    hi_c = np.take_along_axis(hi, channel[:, None], axis=1)[:, 0].astype(np.int64)
    transit = rng.integers(lo_c, hi_c + 1)
    back = rng.integers(world.return_days[0], world.return_days[1] + 1, n)
    declared_lost = rng.integers(world.lost_declared_days[0], world.lost_declared_days[1] + 1, n)
    days = np.where(
        roles == "goods_lost", declared_lost, transit + np.where(roles == "returned", back, 0)
    )
    outcome_day = created.astype("datetime64[D]") + days.astype("timedelta64[D]")

    def pick(values: tuple[str, ...], codes: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=object)[codes]

    return pd.DataFrame(
        {
            "created_at": created,
            "marketplace": pick(MARKETPLACES, marketplace),
            "payment_method": pick(PAYMENT_METHODS, is_cod.astype(int)),
            "duties_terms": pick(DUTIES_TERMS, is_ddu.astype(int)),
            "recipient_tax_id_present": tax_id,
            "buyer_prior_orders": orders.astype(np.int64),
            "buyer_prior_refusals": refusals.astype(np.int64),
            "goods_category": pick(GOODS_CATEGORIES, goods),
            "item_count": items.astype(np.int64),
            "declared_value": declared,
            "currency": pick(CURRENCIES, currency),
            "weight_kg": weight,
            "length_cm": dims[0],
            "width_cm": dims[1],
            "height_cm": dims[2],
            "packaging": pick(PACKAGING_TYPES, packaging),
            "fragile": fragile,
            "valuable_wording": wording,
            "destination_country": pick(catalog.countries, country),
            "remote_area": remote,
            "address_quality": pick(ADDRESS_QUALITIES, address),
            "channel_id": pick(catalog.channel_ids, channel),
            "outcome": pick(OUTCOMES, outcome),
            "outcome_day": outcome_day,
            **{o.truth_column: probs[o.key] for o in EVENTS},
        }
    )


def _simulate(
    rows: int,
    seed: int,
    world: WorldParams,
    catalog: Catalog,
    on_chunk: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Draw ``rows`` shipments in chunks (one child seed each), sort by time, assign ids."""
    if rows < 1:
        raise ValueError("rows must be >= 1")
    sizes = [CHUNK_ROWS] * (rows // CHUNK_ROWS) + ([rows % CHUNK_ROWS] if rows % CHUNK_ROWS else [])
    seeds = np.random.SeedSequence(seed).spawn(len(sizes))
    parts = []
    for size, child in zip(sizes, seeds, strict=True):
        parts.append(_draw_chunk(np.random.default_rng(child), size, world, catalog))
        if on_chunk:
            on_chunk(size)
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    order = np.argsort(frame["created_at"].to_numpy(), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    number = pd.Series(np.arange(1, rows + 1)).astype(str).str.zfill(9)
    frame["shipment_id"] = "SH-" + number
    frame["order_id"] = "SO-" + number
    created = frame["created_at"].to_numpy().astype("datetime64[us]")  # Parquet keeps us
    frame["created_at"] = pd.Series(created).dt.tz_localize("UTC")
    frame["outcome_date"] = (
        frame.pop("outcome_day").to_numpy().astype("datetime64[D]").astype(object)
    )
    return frame[[*HISTORY_FIELDS, *TRUE_COLUMNS]]


def simulate(
    rows: int,
    seed: int,
    world: WorldParams | None = None,
    catalog: Catalog | None = None,
) -> pd.DataFrame:
    """A simulated history: ``HISTORY_FIELDS`` then ``TRUE_COLUMNS`` (never features).

    Same (rows, seed, world, catalog), same frame. Rows are sorted by ``created_at``.
    """
    return _simulate(rows, seed, world or default_world(), catalog or bundled_catalog())


def add_event(frame: pd.DataFrame, event: Outcome, hazard: np.ndarray, seed: int) -> pd.DataFrame:
    """Carve a further event out of the delivered parcels of a simulated history.

    ``hazard`` (n,) is the event's probability for a parcel that would otherwise have been
    delivered, so its true probability is ``hazard x P(delivered)`` and the events still sum
    below 1. The frame gains ``event.truth_column``; the outcome of the parcels drawn becomes
    ``event.label`` (declared on the same day the delivery would have been). This is how a
    new outcome enters the simulated world without touching its physics.
    """
    events = [c for c in frame.columns if c.startswith("true_p_")]
    delivered = 1.0 - frame[events].sum(axis=1).to_numpy()
    hazard = np.clip(np.asarray(hazard, dtype=float), 0.0, 1.0)
    out = frame.copy()
    drawn = (out["outcome"].to_numpy() == DELIVERED_LABEL) & (
        np.random.default_rng(seed).random(len(out)) < hazard
    )
    out.loc[drawn, "outcome"] = event.label
    out[event.truth_column] = hazard * delivered
    return out


def generate_to_parquet(rows: int, seed: int, output: Path, world: str = "default") -> Path:
    """Simulate and write Parquet atomically (temp file + rename); progress for big runs."""
    params = world_by_name(world)
    catalog = bundled_catalog()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if rows >= PROGRESS_MIN_ROWS:
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task(f"drawing {rows:,} shipments", total=rows + 1)
            frame = _simulate(rows, seed, params, catalog, lambda k: progress.advance(task, k))
            progress.update(task, description="writing Parquet")
            path = _write_atomic(frame, output, seed, world)
            progress.advance(task, 1)
        return path
    return _write_atomic(_simulate(rows, seed, params, catalog), output, seed, world)


SEED_KEY, WORLD_KEY = b"shiprisk.simulator_seed", b"shiprisk.simulator_world"
"""Parquet metadata of a simulated file: how it was drawn (training names its run after it)."""


def _write_atomic(frame: pd.DataFrame, output: Path, seed: int, world: str) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {
        **(table.schema.metadata or {}),
        SEED_KEY: str(seed).encode(),
        WORLD_KEY: world.encode(),
    }
    table = table.replace_schema_metadata(meta)
    return write_atomic(output, lambda tmp: pq.write_table(table, tmp))


def simulated_seed(path: Path) -> int | None:
    """The seed a simulated Parquet file was drawn with (None: not simulated, or not Parquet)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # CSV, unreadable: not a simulated file
        return None
    value = meta.get(SEED_KEY)
    return int(value) if value is not None else None
