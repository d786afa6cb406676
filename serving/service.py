"""The BentoML service: ``POST /score`` and ``POST /score_batch`` for checkout.

Start it with ``shiprisk serve`` (imports the MLflow champion into the BentoML store and
pins its tag) or ``bentoml serve shiprisk.serving.service:ShipRisk`` once a tag is pinned.
Each worker is a fresh interpreter that loads and verifies the model in ``__init__``
(nothing is loaded before a fork); requests are scored by :class:`Scorer` on one thread.
"""

from __future__ import annotations

import logging

import bentoml
from starlette.responses import JSONResponse

from shiprisk.serving.errors import error_body
from shiprisk.serving.extras import ExtraError, document_extras
from shiprisk.serving.http_stack import harden, service_config
from shiprisk.serving.model_store import BENTO_MODEL_NAME, pinned_tag
from shiprisk.serving.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorBody,
    ModelRef,
    ScoreRequest,
    ScoreResponse,
)
from shiprisk.settings import get_settings

log = logging.getLogger("shiprisk.service")
log.setLevel(logging.INFO)  # the start-up line is news, not a warning; BentoML's root is WARNING
_settings = get_settings()
MODEL_TAG = pinned_tag() or f"{BENTO_MODEL_NAME}:unpinned"
_API_KEY = _settings.resolved_api_key()
document_extras(MODEL_TAG, ScoreRequest, BatchRequest)  # the served model's own list


@bentoml.service(
    name="shiprisk",
    workers=_settings.workers,
    envs=[{"name": "OMP_NUM_THREADS", "value": "1"}],
    **service_config(_settings),  # traffic timeout backstop; BentoML's metrics off
    # Per-request access lines cost ~0.6 ms of worker CPU on a ~2 ms request (measured);
    # /metrics counts every request by endpoint and status either way.
    logging={"access": {"enabled": _settings.access_log}},
)
class ShipRisk:
    """Loss and rejection risk per channel, the recommended channel and insurance."""

    stored_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        from pathlib import Path

        from shiprisk.serving.scorer import Scorer

        labels = self.stored_model.info.labels
        ref = ModelRef(
            name=BENTO_MODEL_NAME,
            version=labels.get("mlflow_version", "?"),
            digest=labels.get("digest", "?"),
        )
        self.scorer = Scorer.from_directory(Path(self.stored_model.path), ref)
        self.ref = ref
        self.max_batch = get_settings().max_batch
        log.info(
            "shiprisk serving %s (MLflow version %s, digest %s)", MODEL_TAG, ref.version, ref.digest
        )

    # Async on purpose: scoring is ~0.3 ms of CPU, less than handing it to a thread pool
    # and back costs; each worker scores one request at a time either way (the GIL).
    @bentoml.api(route="/score")
    async def score(self, request: ScoreRequest, /) -> ScoreResponse:
        """Score one shipment on every eligible (or listed) channel and recommend one."""
        try:
            return self.scorer.score(request)
        except ExtraError as exc:  # the served model's extras: only known here
            return JSONResponse(error_body(400, exc.fields), status_code=400)  # type: ignore[return-value]

    @bentoml.api(route="/score_batch")
    def score_batch(self, batch: BatchRequest, /) -> BatchResponse:
        """Score up to SHIPRISK_MAX_BATCH shipments in one call."""
        if len(batch.shipments) > self.max_batch:
            return JSONResponse(  # type: ignore[return-value]
                {
                    "error": f"too many shipments: {len(batch.shipments)} > {self.max_batch}",
                    "fields": [{"field": "shipments", "reason": f"at most {self.max_batch}"}],
                },
                status_code=413,
            )
        try:
            results = self.scorer.score_many(batch.shipments)
        except ExtraError as exc:
            return JSONResponse(error_body(400, exc.fields), status_code=400)  # type: ignore[return-value]
        return BatchResponse(results=results, model=self.ref)


# Auth, limits, load shedding, error shapes, metrics and the OpenAPI fixes: serving/http_stack.py.
harden(
    ShipRisk,
    _settings,
    _API_KEY,
    models={"/score": (ScoreRequest, ScoreResponse), "/score_batch": (BatchRequest, BatchResponse)},
    error_model=ErrorBody,
)
