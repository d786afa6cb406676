"""The answer is documented: /docs.json describes every response field, shows a real answer,
names this service; the docs page loads nothing from elsewhere and renders in a real browser;
money in answers is rounded to the cent. Against the session's real BentoML server."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile
from decimal import Decimal
from importlib.metadata import version
from typing import Any

import pytest

from shiprisk.data.contract import example_request
from shiprisk.serving.docs_page import SERVICE_TITLE
from shiprisk.serving.schemas import ChannelScore, ScoreResponse

pytestmark = pytest.mark.slow

RESPONSE_MODELS = {
    "ScoreResponse",
    "ChannelScore",
    "Recommendation",
    "Reason",
    "Action",
    "ModelRef",
    "ErrorBody",
    "FieldError",
}


@pytest.fixture(scope="module")
def spec(server) -> dict[str, Any]:
    import httpx

    answer = httpx.get(f"{server.url}/docs.json", timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _reachable(spec: dict[str, Any], roots: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every schema reachable from ``roots`` through ``$ref``s, with a path for messages."""
    components = spec["components"]["schemas"]
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in found:
                    found[name] = components[name]
                    walk(components[name], name)
            if isinstance(node.get("properties"), dict):
                found.setdefault(where, node)
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for value in node:
                walk(value, where)

    for i, root in enumerate(roots):
        walk(root, f"response{i}")
    return found


def _response_schemas(spec: dict[str, Any]) -> list[dict[str, Any]]:
    roots = []
    for path in ("/score", "/score_batch"):
        for answer in spec["paths"][path]["post"]["responses"].values():
            roots.append(answer["content"]["application/json"]["schema"])
    return roots


def test_every_response_property_has_a_description(spec) -> None:
    schemas = _reachable(spec, _response_schemas(spec))
    assert set(schemas) >= RESPONSE_MODELS, set(schemas)
    missing = [
        f"{name}.{prop}"
        for name, schema in schemas.items()
        for prop, definition in schema.get("properties", {}).items()
        if not str(definition.get("description", "")).strip()
    ]
    assert not missing, missing
    # The batch answer's own fields (inline in the operation) are covered too.
    batch = spec["paths"]["/score_batch"]["post"]["responses"]["200"]
    assert set(batch["content"]["application/json"]["schema"]["properties"]) == {
        "results",
        "model",
    }


def test_money_fields_say_usd_and_cents(spec) -> None:
    schemas = _reachable(spec, _response_schemas(spec))
    money = {
        f"{name}.{prop}": definition["description"]
        for name, schema in schemas.items()
        for prop, definition in schema.get("properties", {}).items()
        if prop.endswith("_usd")
    }
    assert len(money) >= 7, money
    for field, text in money.items():
        assert "USD" in text and "cent" in text, field


def test_openapi_names_this_service_and_shows_a_real_answer(spec, server) -> None:
    import httpx

    info = spec["info"]
    assert info["title"] == SERVICE_TITLE
    assert info["version"] == version("shiprisk")
    assert "docs/policy.md" in info["description"]
    assert "BentoML" not in str(info) and "contact" not in info
    policy = httpx.get(f"{server.url}/docs/policy.md", timeout=30)
    assert policy.status_code == 200 and policy.text.startswith("# Decision policy")
    example = spec["paths"]["/score"]["post"]["responses"]["200"]["content"]["application/json"]
    answer = ScoreResponse.model_validate(example["example"])  # a whole, valid answer
    assert answer.channels and answer.recommendation is not None and answer.reasons
    assert answer.model.version.isdigit() and len(answer.model.digest) == 16
    money = _money_values(example["example"])
    assert money and all(_decimals(v) <= 2 for _, v in money), money


def test_the_docs_page_loads_nothing_from_elsewhere(server) -> None:
    import httpx

    for path in ("/", "/docs"):
        page = httpx.get(f"{server.url}{path}", timeout=30)
        assert page.status_code == 200
        assert SERVICE_TITLE in page.text
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page.text), page.text
        assert "googletagmanager" not in page.text and "github-corner" not in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "http" not in csp
        for asset in re.findall(r'(?:src|href)="\./([^"]+)"', page.text):
            assert httpx.get(f"{server.url}/{asset}", timeout=30).status_code == 200, asset


def _money_values(node: Any) -> list[tuple[str, float]]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_usd") and isinstance(value, int | float):
                found.append((key, value))
            else:
                found += _money_values(value)
    elif isinstance(node, list):
        for value in node:
            found += _money_values(value)
    return found


def _decimals(value: float) -> int:
    return max(0, -Decimal(repr(float(value))).as_tuple().exponent)


def test_money_in_answers_has_at_most_two_decimals(api) -> None:
    base = example_request()
    bodies = [
        base,
        {**base, "destination_country": "MX", "declared_value": 123.456, "weight_kg": 1.37},
        {**base, "payment_method": "cod", "destination_country": "AE", "declared_value": 49.99},
        {
            **base,
            "candidates": [
                {"channel_id": "dhl_express", "quoted_price_usd": 17.123456},
                {"channel_id": "epacket", "quoted_premium_usd": 1.799999},
                {"channel_id": "dedicated_line"},
            ],
            "costs": {"goods_cost_ratio": 0.37, "delay_cost_per_day_usd": 0.333},
        },
    ]
    answers = [api.post("/score", json=b) for b in bodies]
    answers.append(api.post("/score_batch", json={"shipments": bodies}))
    values = []
    for answer in answers:
        assert answer.status_code == 200, answer.text
        values += _money_values(answer.json())
    assert len(values) > 100
    assert {k for k, _ in values} >= {
        "price_usd",
        "premium_usd",
        "expected_cost_usd",
        "expected_cost_uninsured_usd",
        "saving_vs_cheapest_usd",
    }
    assert all(_decimals(v) <= 2 for _, v in values), [
        (k, v) for k, v in values if _decimals(v) > 2
    ]
    for answer in answers[:-1]:  # the saving adds up to the cent from the figures shown
        data = answer.json()
        rec = data["recommendation"]
        by_id = {c["channel_id"]: c for c in data["channels"]}
        cheapest = by_id[rec["cheapest_channel_id"]]["expected_cost_usd"]
        assert rec["saving_vs_cheapest_usd"] == round(cheapest - rec["expected_cost_usd"], 2)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is missing: `make test` installs it (make browser)"
    return found


def test_swagger_ui_renders_in_a_headless_browser(server) -> None:
    description = ChannelScore.model_fields["expected_cost_usd"].description
    with tempfile.TemporaryDirectory(prefix="shiprisk-chromium-") as profile:
        done = subprocess.run(
            [
                _chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                "--dump-dom",
                f"{server.url}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = html.unescape(done.stdout)
    # Rendered by Swagger UI from /docs.json, not just the page's static <title>.
    assert re.search(rf'<h2 class="title">\s*{re.escape(SERVICE_TITLE)}', dom), dom[:3000]
    assert version("shiprisk") in dom
    assert description[:60] in dom, "a response field's description is not on the page"
    assert "BentoML" not in dom
