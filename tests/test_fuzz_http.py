"""Fuzzing the HTTP API from its OpenAPI schema: no request may get a 5xx (issue 12, "Done when").

Corpus: schemathesis generates up to 25 requests for each operation in /openapi.json (10 operations: about 400
requests with random paths, query values, form fields and uploaded bytes); two in three requests for a job go to a
real one (queued, done, cancelled) instead of a random id. Then hypothesis sends 100 random JSON values (nested
objects, lists, huge and non-finite numbers, long strings) as the ``config`` of a job with valid images, and 40
random ``style_blend`` strings, and 40 texts json.dumps would not write (nesting to 5000 deep,
numbers of up to 6000 digits). The engine is a stand-in that paints the content at once, so a job ends in
milliseconds and its result, thumbnails and history can be fetched; 503 (the decode budget) would be allowed, but
nothing here should reach it. Runs in about half a minute.
"""

from __future__ import annotations

import io
import json
import time
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'impasto[web]'")
pytest.importorskip("schemathesis", reason="the fuzz test needs schemathesis: pip install -e '.[test]'")

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

import schemathesis

from impasto.io.recipe import save_image
from impasto.web import routes
from impasto.web.app import create_app

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
AT_ONCE = {"size": 32, "start_size": None, "steps": 1}


class _Painted:
    """What the queue needs of a Result: a status, losses and ``save``."""

    status, message = "done", ""
    losses = {"total": 1.0, "content": 0.5, "style": 0.05, "tv": 0.0}

    def __init__(self, image: Image.Image) -> None:
        self.image = image

    def save(self, path) -> None:
        save_image(self.image, path, {"status": "done", "config": {}})


def _stand_in(content, styles, config, *, callback, stop, progress):
    return _Painted(content.image.resize((32, 32)))


def _png(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


IMAGES = [("content", ("c.png", _png((200, 30, 30)), "image/png")), ("style", ("s.png", _png((30, 30, 200)), "image/png"))]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app (engine: the stand-in) with a done, a cancelled and a queued job; and their ids."""
    app = create_app(tmp_path_factory.mktemp("fuzz"), "cpu", start_worker=False)
    queue = app.state.queue
    queue._run_fn = _stand_in
    with TestClient(app) as client:
        ids = [client.post("/api/jobs", files=IMAGES, data={"config": json.dumps(AT_ONCE)}).json()["id"]
               for _ in range(3)]
        client.post(f"/api/jobs/{ids[1]}/cancel")
        queue.start()
        deadline = time.monotonic() + 60
        while any(queue.get(i).status == "queued" for i in ids) and time.monotonic() < deadline:
            time.sleep(0.02)
        queue.pause()  # from now on jobs stay queued
        ids.append(client.post("/api/jobs", files=IMAGES, data={"config": json.dumps(AT_ONCE)}).json()["id"])
        assert [queue.get(i).status for i in ids] == ["done", "cancelled", "done", "queued"]
        yield app, client, ids


@pytest.fixture(scope="module")
def api_schema(served):
    return schemathesis.openapi.from_asgi("/openapi.json", served[0])


# Every operation in the schema, read from the router (the schema itself needs an app: it is loaded per module).
OPERATIONS = [(m, r.path) for r in routes.router.routes if getattr(r, "include_in_schema", False)
              for m in sorted(r.methods)]


@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_request_from_the_schema_gets_a_5xx(method, path, served, api_schema):
    _, _, ids = served
    ended = ids[:3]  # an event stream of a queued job stays open until the job ends: only ended ones here

    @given(case=api_schema[path][method].as_strategy())
    @FUZZ
    def fuzz(case) -> None:
        job = case.path_parameters.get("job_id") if case.path_parameters else None
        pick = sum(map(ord, job)) if isinstance(job, str) else 0
        if pick % 3:
            pool = ended if path.endswith("/events") else ids
            case.path_parameters["job_id"] = pool[pick % len(pool)]  # a real job, with the fuzzed rest
        response = case.call()
        assert response.status_code < 500, (case.method, case.formatted_path, case.query, response.status_code,
                                            response.text[:300])

    fuzz()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**400, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30)
FIELDS = st.sampled_from(["size", "shape", "steps", "scale_steps", "lr", "style_layers", "content_layers",
                          "style_blend", "init", "weights", "preset", "seed", "tile_size", "ema", "tol",
                          "checkpoint", "precision", "pooling", "style_scale", "first_steps"])


@given(config=st.dictionaries(FIELDS, JSON, max_size=4) | JSON)
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_random_json_configs_are_answered_without_a_5xx(served, config):
    _, client, _ = served
    r = client.post("/api/jobs", files=IMAGES, data={"config": json.dumps(config)})
    assert r.status_code in (201, 400, 413, 422), (config, r.status_code, r.text[:300])
    assert isinstance(r.json()["detail"] if r.status_code != 201 else r.json()["id"], str)


RAW = st.one_of(  # texts json.dumps would never write: nesting past the recursion limit, numbers past 4300 digits
    st.builds(lambda d, pair, leaf: pair[0] * d + leaf + pair[1] * d, st.integers(1, 5000),
              st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"style_layers":', "}")]), st.sampled_from(["1", "[]"])),
    st.builds(lambda k, n, sign: f'{{"{k}": {sign}{"9" * n}}}', FIELDS, st.integers(1, 6000), st.sampled_from(["", "-"])),
    st.builds(lambda k, d: f'{{"{k}": ' + "[" * d + "]" * d + "}", FIELDS, st.integers(1, 3000)),
    st.text(max_size=200),
)


@given(text=RAW)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_absurd_config_texts_are_answered_without_a_5xx(served, text):
    _, client, _ = served
    r = client.post("/api/jobs", files=IMAGES, data={"config": text})
    assert r.status_code in (201, 400, 413, 422), (text[:80], r.status_code, r.text[:300])


@given(blend=st.text(max_size=60) | st.lists(st.floats(), max_size=5).map(lambda xs: ",".join(map(str, xs))))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_random_style_blends_are_answered_without_a_5xx(served, blend):
    _, client, _ = served
    r = client.post("/api/jobs", files=IMAGES, data={"config": json.dumps(AT_ONCE), "style_blend": blend})
    assert r.status_code in (201, 400, 422), (blend, r.status_code, r.text[:300])
