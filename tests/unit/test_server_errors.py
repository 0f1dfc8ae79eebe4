"""ServerBackend error handling against a scripted far side that speaks llama-server's real
wire format (SSE ``data:`` chunks, final chunk with ``timings``): 5xx and cut or malformed
streams are retried with backoff, unreachable servers fail with a clear error, 4xx is not
retried, and streamed deltas are never sent twice."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from continuum.backends.base import CompletionRequest, GenerationSettings, SlotKey
from continuum.backends.server import HashRing, ServerBackend, ServerConfig
from continuum.errors import BackendError
from tests.server.harness import free_port

pytestmark = pytest.mark.anyio

FAST = ServerConfig(retries=3, backoff_s=0.01, down_for_s=0.01)


def final_chunk(text: str = "") -> dict:
    return {
        "content": text,
        "stop": True,
        "id_slot": 0,
        "stop_type": "eos",
        "timings": {
            "cache_n": 40,
            "prompt_n": 5,
            "prompt_ms": 12.0,
            "predicted_n": 3,
            "predicted_ms": 30.0,
            "predicted_per_second": 100.0,
        },
    }


class FarSide:
    """Answers /completion from a script: one entry per request."""

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.bodies: list[dict] = []
        self.tokenized: list[tuple[str, bool]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                payload = {"/health": {"status": "ok"}, "/props": {"total_slots": 2}}.get(
                    self.path, []
                )
                self._json(200, payload)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                if self.path == "/tokenize":  # llama-server's format: {"tokens": [...]}
                    content = body["content"]
                    special = body.get("parse_special", True)
                    tokens = [1000 + len(content)] if special else [ord(c) for c in content]
                    owner.tokenized.append((content, special))
                    self._json(200, {"tokens": tokens})
                    return
                if self.path.startswith("/slots/"):
                    self._json(200, {"id_slot": 0})
                    return
                owner.bodies.append(body)
                if self.path == "/v1/completions":
                    self._openai()
                    return
                step = owner.script.pop(0) if owner.script else "ok"
                if step == "500":
                    self._json(500, {"error": {"code": 500, "message": "boom"}})
                elif step == "400":
                    self._json(400, {"error": {"code": 400, "message": "bad prompt"}})
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for piece in ("Hel", "lo"):
                        self.wfile.write(f"data: {json.dumps({'content': piece})}\n\n".encode())
                        self.wfile.flush()
                    if step == "cut":
                        return  # connection closes before the final chunk
                    if step == "garbage":
                        self.wfile.write(b"data: {not json\n\n")
                        return
                    self.wfile.write(f"data: {json.dumps(final_chunk('!'))}\n\n".encode())

            def _openai(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                chunks = [
                    {"choices": [{"index": 0, "text": "Hi", "finish_reason": None}]},
                    {"choices": [{"index": 0, "text": " there", "finish_reason": "stop"}]},
                    {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
                ]
                for chunk in chunks:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

            def _json(self, code: int, payload: object) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def far_side() -> Iterator[FarSide]:
    side = FarSide([])
    yield side
    side.close()


def request() -> CompletionRequest:
    return CompletionRequest(
        prompt="hi", slot=SlotKey(persona_id="ana"), settings=GenerationSettings(max_tokens=4)
    )


async def test_metrics_come_from_the_server_timings(far_side):
    backend = ServerBackend(far_side.url, FAST)
    c = await backend.complete(request())
    assert c.text == "Hello!"
    m = c.metrics
    assert (m.prompt_tokens, m.reused_tokens, m.evaluated_tokens, m.generated_tokens) == (
        45,
        40,
        5,
        3,
    )
    body = far_side.bodies[0]
    assert body["cache_prompt"] is True and body["id_slot"] in (0, 1) and body["stream"] is True
    await backend.aclose()


@pytest.mark.parametrize("failure", ["500", "cut", "garbage"])
async def test_retryable_failures_are_retried_and_deltas_not_repeated(far_side, failure):
    far_side.script[:] = [failure, "ok"]
    backend = ServerBackend(far_side.url, FAST)
    deltas: list[str] = []
    c = await backend.complete(request(), on_token=deltas.append)
    assert c.text == "Hello!" and "".join(deltas) == "Hello!"
    assert len(far_side.bodies) == 2
    await backend.aclose()


async def test_client_errors_are_not_retried(far_side):
    far_side.script[:] = ["400"]
    backend = ServerBackend(far_side.url, FAST)
    with pytest.raises(BackendError, match="HTTP 400"):
        await backend.complete(request())
    assert len(far_side.bodies) == 1
    await backend.aclose()


async def test_persistent_failure_gives_up_with_the_last_error(far_side):
    far_side.script[:] = ["500"] * 10
    backend = ServerBackend(far_side.url, FAST)
    with pytest.raises(BackendError, match=r"after 4 attempts.*HTTP 500"):
        await backend.complete(request())
    await backend.aclose()


async def test_unreachable_server_is_a_clear_error():
    backend = ServerBackend(f"http://127.0.0.1:{free_port()}", FAST)
    with pytest.raises(BackendError, match=r"cannot connect|no server is reachable"):
        await backend.complete(request())
    await backend.aclose()


async def test_a_dead_server_fails_over_to_the_live_one(far_side):
    dead = f"http://127.0.0.1:{free_port()}"
    backend = ServerBackend([dead, far_side.url], FAST)
    key = next(
        SlotKey(persona_id=f"p{i}") for i in range(50) if backend.ring.order(f"p{i}|")[0] == dead
    )
    c = await backend.complete(request().model_copy(update={"slot": key}))
    assert c.text == "Hello!" and backend.home[key] == far_side.url
    await backend.aclose()


def test_consistent_hashing_moves_only_the_lost_servers_keys():
    urls = ["http://a", "http://b", "http://c"]
    full, reduced = HashRing(urls), HashRing(urls[:2])
    keys = [f"persona-{i}|" for i in range(300)]
    moved = [k for k in keys if full.order(k)[0] != reduced.order(k)[0]]
    assert all(full.order(k)[0] == "http://c" for k in moved)
    share = {u: sum(full.order(k)[0] == u for k in keys) for u in urls}
    assert min(share.values()) > 50  # roughly even spread


async def test_openai_compatible_servers_get_plain_completions(far_side):
    config = ServerConfig(api="openai", model="ai/smollm2", retries=0)
    backend = ServerBackend(far_side.url, config)
    c = await backend.complete(request())
    assert c.text == "Hi there"
    assert (c.metrics.evaluated_tokens, c.metrics.generated_tokens) == (9, 2)
    body = far_side.bodies[0]
    assert body["model"] == "ai/smollm2" and body["max_tokens"] == 4 and "id_slot" not in body
    await backend.aclose()
