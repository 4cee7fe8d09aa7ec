"""A fake vLLM OpenAI-compatible server following vLLM's documented responses, for tests.

Implements `/v1/models` (with `max_model_len`), `/tokenize` (`count`, `tokens`, `max_model_len`),
`/v1/chat/completions` (streaming SSE with `reasoning` deltas and a final usage chunk when
`stream_options.include_usage`), and the HTTP 400 vLLM returns when the prompt exceeds the context.
Every request body is recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.servers import LocalHTTPServer


class FakeVLLM(LocalHTTPServer):
    def __init__(
        self,
        model: str = "Qwen/Qwen3-30B-A3B",
        max_model_len: int = 40960,
        reply: str = "The logs are kept for 7 days [1].",
        reasoning: str = "Let me look at note 1.",
        reasoning_field: str = "reasoning",
    ) -> None:
        self.model, self.max_model_len = model, max_model_len
        self.reply, self.reasoning, self.reasoning_field = reply, reasoning, reasoning_field
        self.requests: list[dict[str, Any]] = []
        self.responder: Callable[[dict[str, Any]], str] | None = (
            None  # body → reply (a scripted, reading server)
        )
        self.reject: Callable[[dict[str, Any]], str | None] | None = (
            None  # body → a validation error (HTTP 500)
        )
        self.like_llamacpp = (
            False  # no max_model_len in /v1/models; a too-long prompt gets an empty event stream
        )
        self.reject_next_as_too_long = 0
        # fault injection: models500 | models_junk | chat500 | chat_junk | midstream_junk | hang |
        # busy_once | cut (two chunks, half a JSON line, close) | no_finish (no finish_reason, no
        # [DONE]) | drip (a token every `drip_s`, forever) | flood (ignores max_tokens: streams
        # until the client leaves) | wrong_schema (chunks that are not chat-completion chunks)
        self.fault: str | None = None
        self.drip_s = 0.5
        self.sent_bytes = 0
        self.connections = 0
        self.release = threading.Event()  # ends a "hang"
        from kb.focus.tokens import vocab_counter

        self.counter = vocab_counter()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fault(self, where: str) -> bool:
                f = fake.fault or ""
                if f == "hang":
                    fake.release.wait(120)  # accept, then never answer (until the test ends)
                    return True
                if f == f"{where}500":
                    self._json(
                        500,
                        {
                            "object": "error",
                            "message": "Internal Server Error: CUDA error",
                            "code": 500,
                        },
                    )
                    return True
                if f == f"{where}_junk":
                    data = b"<html>502 Bad Gateway</html>{not json"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return True
                return False

            def do_GET(self) -> None:
                fake.connections += 1
                if self._fault("models"):
                    return
                if self.path == "/v1/models":
                    card = {"id": fake.model, "object": "model", "owned_by": "vllm"}
                    if not fake.like_llamacpp:
                        card["max_model_len"] = fake.max_model_len
                    self._json(200, {"object": "list", "data": [card]})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                fake.connections += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, **body})
                if self.path.endswith("/chat/completions") and self._fault("chat"):
                    return
                problem = (
                    fake.reject(body)
                    if fake.reject and self.path.endswith("/chat/completions")
                    else None
                )
                if problem:  # as llama-cpp-python's server answers a request its schema refuses
                    self._json(
                        500,
                        {
                            "error": {
                                "message": problem,
                                "type": "internal_server_error",
                                "code": 500,
                            }
                        },
                    )
                    return
                if self.path.endswith("/chat/completions") and fake.fault == "busy_once":
                    fake.fault = None
                    self._json(
                        503, {"object": "error", "message": "server is loading", "code": 503}
                    )
                    return
                if self.path == "/tokenize":
                    ids = fake.counter.encode(body["prompt"])
                    self._json(
                        200, {"count": len(ids), "max_model_len": fake.max_model_len, "tokens": ids}
                    )
                    return
                if body.get("model") != fake.model:
                    self._json(
                        404,
                        {
                            "object": "error",
                            "message": f"The model `{body.get('model')}` does not exist.",
                            "type": "NotFoundError",
                            "code": 404,
                        },
                    )
                    return
                prompt = sum(fake.counter.count(m["content"]) + 5 for m in body["messages"])
                if fake.like_llamacpp and prompt + body.get("max_tokens", 0) > fake.max_model_len:
                    self.send_response(
                        200
                    )  # llama-cpp-python: the error is raised inside the stream, which ends
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    return
                if (
                    fake.reject_next_as_too_long
                    or prompt + body.get("max_tokens", 0) > fake.max_model_len
                ):
                    fake.reject_next_as_too_long = max(0, fake.reject_next_as_too_long - 1)
                    self._json(
                        400,
                        {
                            "object": "error",
                            "type": "BadRequestError",
                            "code": 400,
                            "message": "This model's maximum context length is "
                            f"{fake.max_model_len} tokens. However, "
                            f"you requested {prompt + body.get('max_tokens', 0)} tokens.",
                        },
                    )
                    return
                thinking = body.get("chat_template_kwargs", {}).get("enable_thinking", True)
                reply = fake.responder(body) if fake.responder else fake.reply
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()

                def send(obj: dict[str, Any]) -> None:
                    data = f"data: {json.dumps(obj)}\n\n".encode()
                    self.wfile.write(data)
                    self.wfile.flush()
                    fake.sent_bytes += len(data)

                base = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": fake.model,
                }
                if thinking and fake.reasoning:
                    for part in fake.reasoning.split(" "):
                        send(
                            {
                                **base,
                                "choices": [
                                    {"index": 0, "delta": {fake.reasoning_field: part + " "}}
                                ],
                            }
                        )
                if fake.fault in ("cut", "no_finish", "drip", "flood", "wrong_schema"):
                    self._misbehave(send, base, reply)
                    return
                for part in reply.split(" "):
                    send({**base, "choices": [{"index": 0, "delta": {"content": part + " "}}]})
                    if fake.fault == "midstream_junk":
                        self.wfile.write(b"data: {this is not json\n\n")
                        self.wfile.flush()
                        return
                    if fake.fault == "midstream_stall":
                        fake.release.wait(120)
                        return
                send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if body.get("stream_options", {}).get("include_usage"):
                    comp = fake.counter.count(reply) + (
                        fake.counter.count(fake.reasoning) if thinking else 0
                    )
                    send(
                        {
                            **base,
                            "choices": [],
                            "usage": {
                                "prompt_tokens": prompt,
                                "completion_tokens": comp,
                                "total_tokens": prompt + comp,
                            },
                        }
                    )
                self.wfile.write(b"data: [DONE]\n\n")

            def _misbehave(self, send: Callable[[dict[str, Any]], None], base: dict, reply: str):
                words = reply.split(" ")

                def word(w: str) -> dict[str, Any]:
                    return {**base, "choices": [{"index": 0, "delta": {"content": w + " "}}]}

                try:
                    if fake.fault == "cut":  # two chunks, then half a JSON line, then close
                        send(word(words[0]))
                        send(word(words[1]))
                        self.wfile.write(b'data: {"id": "chatcmpl-1", "choices": [{"ind')
                    elif fake.fault == "no_finish":  # the whole text, no finish_reason, no [DONE]
                        for w in words:
                            send(word(w))
                    elif fake.fault == "drip":  # one token every drip_s, forever
                        while not fake.release.wait(fake.drip_s):
                            send(word("drip"))
                    elif fake.fault == "flood":  # ignores max_tokens
                        while not fake.release.is_set():
                            send(word("flood " * 200))
                    elif fake.fault == "wrong_schema":
                        send({**base, "choices": [{"index": 0, "delta": None}]})
                        send({"result": {"text": reply}})
                        send(
                            {
                                **base,
                                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                            }
                        )
                        self.wfile.write(b"data: [DONE]\n\n")
                except OSError:  # the client went away: what a bounded client does
                    pass

        self._serve(Handler)

    def __exit__(self, *exc: object) -> None:
        self.release.set()  # a "hang" ends before the server shuts down
        super().__exit__(*exc)

    def chats(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]
