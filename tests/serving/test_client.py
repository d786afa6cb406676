"""The typed client against the session's real server: models in, models out, errors raised."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from shiprisk.data.contract import example_request
from shiprisk.serving.client import ShipRiskClient, ShipRiskError
from shiprisk.serving.schemas import BatchResponse, ScoreRequest, ScoreResponse
from tests.conftest import TEST_API_KEY

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_the_readme_client_example_sends_the_curl_body() -> None:
    readme = (REPO / "README.md").read_text()
    curl = re.search(r"```bash\n(curl [^`]*?/score [^`]*?)\n```", readme)
    assert curl and 'Path("examples/score_request.json")' in readme
    args = shlex.split(curl.group(1).replace("\\\n", " "))
    body = json.loads(args[args.index("-d") + 1])
    assert json.loads((REPO / "examples" / "score_request.json").read_text()) == body


def test_the_client_returns_the_response_models(server, api) -> None:
    with ShipRiskClient(server.url, api_key=TEST_API_KEY) as client:
        assert client.ready()
        answer = client.score(example_request())
        assert isinstance(answer, ScoreResponse)
        assert answer.model_dump(mode="json") == api.post("/score", json=example_request()).json()
        request = ScoreRequest.model_validate({**example_request(), "destination_country": "MX"})
        batch = client.score_batch([request, example_request()])
        assert isinstance(batch, BatchResponse) and len(batch.results) == 2
        assert batch.results[0].channels == client.score(request).channels


def test_the_client_raises_the_error_body(server) -> None:
    with (
        ShipRiskClient(server.url, api_key=TEST_API_KEY) as client,
        pytest.raises(ShipRiskError) as caught,
    ):
        client.score({**example_request(), "weight_kg": -1})
    assert caught.value.status == 400
    assert [f.field for f in caught.value.body.fields] == ["weight_kg"]
    with ShipRiskClient(server.url) as keyless, pytest.raises(ShipRiskError) as caught:
        keyless.score(example_request())
    assert caught.value.status == 401
