"""The server log a user reads: the start-up line at INFO, and each client error as one
INFO line naming status and contract fields, with no traceback and no request value."""

from __future__ import annotations

import time

from shiprisk.data.contract import example_request

SECRET = "do-not-log-me-123"


def _new_log(server, offset: int, needle: str, timeout: float = 20.0) -> str:
    """The server log written after ``offset``, once ``needle`` shows up (logs are async)."""
    deadline = time.monotonic() + timeout
    while True:
        text = server.log_path.read_bytes()[offset:].decode("utf-8", "replace")
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def test_client_errors_are_one_line_without_traceback(server, api) -> None:
    offset = server.log_path.stat().st_size
    bad = [
        {**example_request(), "weight_kg": -1},  # out of range
        {**example_request(), "order_id": SECRET, "buyer_name": SECRET},  # unknown field
        {**example_request(), "declared_value": SECRET},  # wrong type
        {k: v for k, v in example_request().items() if k != "currency"},  # missing field
    ]
    for body in bad:
        assert api.post("/score", json=body).status_code == 400
    raw = api.post("/score", content=b"{not json", headers={"content-type": "application/json"})
    assert raw.status_code == 400
    assert api.post("/score_batch", json={"shipments": [bad[0]]}).status_code == 400
    assert api.get("/no/such/path").status_code == 404
    text = _new_log(server, offset, "client error 404")
    lines = [line for line in text.splitlines() if "client error" in line]
    assert len(lines) >= 7, text
    assert all("[INFO]" in line for line in lines), lines
    assert any("client error 400 on POST: invalid request (fields: weight_kg)" in x for x in lines)
    assert "Traceback" not in text and "[ERROR]" not in text, text
    assert "Warning" not in text, text
    assert SECRET not in text and "/no/such/path" not in text


def test_the_model_line_is_info(server) -> None:
    text = server.log_path.read_text(errors="replace")
    started = [line for line in text.splitlines() if "shiprisk serving" in line]
    assert started and all("[INFO]" in line for line in started), started
