"""A seller export as real shop software writes it, built from the simulated world.

Renamed (Spanish) columns, destination countries as Spanish and French names, weights in
grams, US dates like ``4/1/2016 21:05``, a four-value payment column, decimal commas, a
status column with cancelled orders, a semicolon delimiter and Latin-1 encoding: everything
``examples/history_mapping.yaml`` must undo, with no preprocessing. ``examples/history.csv``
was written by this module::

    .venv/bin/python -m tests.data.foreign_export examples/history.csv 3000 5
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ENCODING = "latin-1"
DELIMITER = ";"
CANCELLED = "Anulado"
STATUS = {"delivered": "Entregado", "lost": "Perdido", "rejected": "Devuelto"}
PAYMENTS_PREPAID = ("DEBIT", "TRANSFER", "PAYMENT")
PAYMENT_COD = "CASH"
YES = "sí"


def country_names(codes: pd.Series) -> pd.Series:
    """Every other row in Spanish, the rest in French (CLDR names, e.g. Japón, Allemagne)."""
    from babel import Locale

    spanish, french = Locale("es").territories, Locale("fr").territories
    names = [(spanish if i % 2 == 0 else french)[code] for i, code in enumerate(codes.to_numpy())]
    return pd.Series(names, index=codes.index)


def _us_time(stamps: pd.Series) -> pd.Series:
    """``4/1/2016 21:05``: month/day/year without leading zeros, 24-hour clock."""
    return pd.Series(
        [f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d}" for t in stamps],
        index=stamps.index,
    )


def _yes_no(values: pd.Series) -> pd.Series:
    return values.map({True: YES, False: "no"})


def _comma(values: pd.Series, digits: int) -> pd.Series:
    return values.round(digits).map(lambda v: f"{v:.{digits}f}".replace(".", ","))


def build_export(frame: pd.DataFrame, *, seed: int = 0, cancelled: int = 40) -> pd.DataFrame:
    """The export of ``frame`` (a simulated history), plus ``cancelled`` cancelled orders."""
    rng = np.random.default_rng(seed)
    prepaid = rng.choice(PAYMENTS_PREPAID, size=len(frame))
    outcome_date = pd.to_datetime(frame["outcome_date"])
    out = pd.DataFrame(
        {
            "Nº pedido": frame["order_id"],
            "Fecha pedido": _us_time(frame["created_at"]),
            "Canal de venta": frame["marketplace"].str.capitalize(),
            "Tipo de pago": np.where(frame["payment_method"] == "cod", PAYMENT_COD, prepaid),
            "Incoterm": frame["duties_terms"],
            "NIF en aduana": _yes_no(frame["recipient_tax_id_present"]),
            "Pedidos previos": frame["buyer_prior_orders"],
            "Rechazos previos": frame["buyer_prior_refusals"],
            "Categoría": frame["goods_category"],
            "Unidades": frame["item_count"],
            "Valor declarado": _comma(frame["declared_value"], 2),
            "Moneda": frame["currency"],
            "Peso (g)": (frame["weight_kg"] * 1000).round().clip(lower=1).astype(int),
            "Largo cm": _comma(frame["length_cm"], 1),
            "Ancho cm": _comma(frame["width_cm"], 1),
            "Alto cm": _comma(frame["height_cm"], 1),
            "Embalaje": frame["packaging"],
            "Frágil": _yes_no(frame["fragile"]),
            "Etiqueta de valor": _yes_no(frame["valuable_wording"]),
            "País destino": country_names(frame["destination_country"]),
            "Zona remota": _yes_no(frame["remote_area"]),
            "Dirección": frame["address_quality"],
            "Seguimiento": frame["shipment_id"],
            "Servicio": frame["channel_id"],
            "Estado": frame["outcome"].map(STATUS),
            "Fecha estado": [f"{d.day:02d}/{d.month:02d}/{d.year}" for d in outcome_date],
        }
    ).reset_index(drop=True)
    extra = out.sample(cancelled, random_state=seed).copy()
    extra["Nº pedido"] = [f"X-{i}" for i in range(cancelled)]
    extra["Seguimiento"] = [f"XS-{i}" for i in range(cancelled)]
    extra["Estado"] = CANCELLED
    extra["Fecha estado"] = ""
    return pd.concat([out, extra], ignore_index=True)


def write_export(export: pd.DataFrame, path: Path) -> Path:
    """Semicolon-separated, Latin-1 (fails loudly if a name does not fit Latin-1)."""
    path.write_bytes(export.to_csv(index=False, sep=DELIMITER).encode(ENCODING))
    return path


if __name__ == "__main__":  # regenerate examples/history.csv
    from shiprisk.data.simulator import simulate

    target, rows, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    write_export(build_export(simulate(rows, seed=seed), seed=seed, cancelled=12), target)
    print(f"wrote {target}")
