"""A small typed client for the scoring service: answers come back as the response models.

Example (the README has it in full)::

    with ShipRiskClient("http://127.0.0.1:3000") as client:
        answer = client.score(shipment)  # a dict of the contract's fields, or a ScoreRequest
        print(answer.recommendation.channel_id, answer.recommendation.insure)

It speaks plain HTTP (httpx), so it needs only this package's schemas, not BentoML. A 4xx or
5xx answer raises :class:`ShipRiskError` carrying the documented error body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from pydantic import BaseModel

from shiprisk.serving.schemas import BatchResponse, ErrorBody, ScoreRequest, ScoreResponse

Shipment = ScoreRequest | Mapping[str, Any]
"""A request as the model or as the JSON-ready dict the API documents."""


class ShipRiskError(RuntimeError):
    """An error answer: ``status``, and ``body`` (``error`` and the ``fields`` at fault)."""

    def __init__(self, status: int, body: ErrorBody) -> None:
        fields = "; ".join(f"{f.field}: {f.reason}" for f in body.fields)
        super().__init__(f"HTTP {status}: {body.error}" + (f" ({fields})" if fields else ""))
        self.status = status
        self.body = body


class ShipRiskClient:
    """``score`` and ``score_batch`` over one pooled connection; use it as a context manager."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:3000",
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"x-api-key": api_key} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    def score(self, shipment: Shipment) -> ScoreResponse:
        """Risks, costs and the recommendation for one shipment (``POST /score``)."""
        return ScoreResponse.model_validate(self._post("/score", _json(shipment)))

    def score_batch(self, shipments: Sequence[Shipment]) -> BatchResponse:
        """Answers for up to the server's ``SHIPRISK_MAX_BATCH`` shipments, in order."""
        body = {"shipments": [_json(s) for s in shipments]}
        return BatchResponse.model_validate(self._post("/score_batch", body))

    def ready(self) -> bool:
        """True when the server answers ``/readyz`` with 200."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        answer = self._http.post(path, json=body)
        if answer.status_code >= 400:
            try:
                error = ErrorBody.model_validate(answer.json())
            except ValueError:
                error = ErrorBody(error=answer.reason_phrase or "request failed")
            raise ShipRiskError(answer.status_code, error)
        return answer.json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ShipRiskClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json(shipment: Shipment) -> dict[str, Any]:
    if isinstance(shipment, BaseModel):
        return shipment.model_dump(mode="json", exclude_unset=True)
    return dict(shipment)
