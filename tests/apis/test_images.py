"""Image generation (``POST .../images/generations``): the adapter and route without I/O, the
dev server's endpoint, and spans recorded through the real openai SDK (sync, async, httpx and
httpx2 clients) read back from a real MLflow store."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from llm_devserver import DevServer
from llm_devserver.images import STREAM_ERROR_MESSAGE
from readback import read_spans
from sdk import Chat

from tracer import TracedClient, TracerConfig
from tracer.apis.images import IMAGES, image_media_type
from tracer.routes import APIS, match

PROMPT = "A lighthouse on a cliff at dawn, watercolour"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(b64: str) -> tuple[int, int]:
    """Width and height of a base64 PNG (read from its IHDR chunk)."""
    raw = base64.b64decode(b64)
    assert raw.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", raw[16:24])
    return width, height


def placeholder(b64: str, media_type: str = "image/png") -> str:
    return f"[{media_type} omitted: {len(base64.b64decode(b64))} bytes as base64]"


def only_tool_span(experiment: str) -> Any:
    """The single span of the test, which must be a TOOL span."""
    spans = read_spans(experiment)
    assert [s.span_type for s in spans] == ["TOOL"], [s.name for s in spans]
    return spans[0]


def stored(experiment: str) -> str:
    return "\n".join(json.dumps(s.to_dict()) for s in read_spans(experiment))


def exception_events(span: Any) -> list[dict[str, Any]]:
    return [e.attributes for e in span.events if e.name == "exception"]


@pytest.fixture(params=["sync", "async", "sync-httpx2", "async-httpx2"])
def sdk(request: pytest.FixtureRequest, server: DevServer) -> Chat:
    return Chat(request.param, server.base_url)


# --- the adapter and the route, without I/O ---------------------------------------------------


@pytest.mark.parametrize(
    ("path", "deployment"),
    [
        ("/v1/images/generations", None),
        ("/v1/images/generations/", None),
        ("/openai/v1/images/generations", None),
        ("/openai/deployments/my-dalle/images/generations", "my-dalle"),
    ],
)
def test_route(path: str, deployment: str | None) -> None:
    route = match("POST", path)
    assert route is not None
    assert (route.api, route.deployment) == (IMAGES, deployment)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/images/edits"),
        ("POST", "/v1/images/variations"),
        ("POST", "/v1/images/generations/extra"),
        ("GET", "/v1/images/generations"),
    ],
)
def test_other_image_paths_are_not_routed(method: str, path: str) -> None:
    assert match(method, path) is None


def test_custom_route_to_images() -> None:
    assert APIS["images.generations"] is IMAGES
    config = TracerConfig(routes={r"/gateway/draw$": "images.generations"})
    assert match("POST", "/gateway/draw", config.routes).api is IMAGES  # type: ignore[union-attr]


def test_outputs_replace_images_by_placeholders() -> None:
    jpeg = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(3000)).decode()
    response = {"created": 1, "data": [{"b64_json": jpeg}, {"url": "https://x/y.png"}]}
    out = IMAGES.outputs(response, TracerConfig())
    assert out["data"] == [
        {"b64_json": placeholder(jpeg, "image/jpeg")},
        {"url": "https://x/y.png"},
    ]
    assert response["data"][0]["b64_json"] == jpeg  # the response itself is not changed
    assert IMAGES.outputs(response, TracerConfig(capture_media=True)) is response
    stripped = IMAGES.outputs(response, TracerConfig(capture_content=False, capture_media=True))
    assert stripped == {"created": 1, "data": [{}, {}]}


def test_media_type_from_format_or_bytes() -> None:
    assert image_media_type("webp", "iVBORw0KGgo") == "image/webp"
    assert image_media_type(None, "iVBORw0KGgoAAAA") == "image/png"
    assert image_media_type(None, "R0lGODlh") == "image/gif"
    assert image_media_type(None, "AAAA") == "image"


def test_summary_of_a_response_and_of_an_error() -> None:
    summary = IMAGES.summarize(
        {
            "created": 1,
            "data": [{"b64_json": "x"}, {"b64_json": "y"}],
            "size": "1024x1024",
            "quality": "high",
            "usage": {"input_tokens": 10, "output_tokens": 4160, "total_tokens": 4170},
        }
    )
    assert summary.usage == {"input_tokens": 10, "output_tokens": 4160, "total_tokens": 4170}
    assert summary.attributes == {
        "images.count": 2,
        "images.size": "1024x1024",
        "images.quality": "high",
    }
    assert summary.error is None
    error = IMAGES.summarize({"error": {"message": "Your request was rejected", "type": "x"}})
    assert error.error == "Your request was rejected"


def test_stream_rebuilt_from_completed_events() -> None:
    stream = IMAGES.new_stream()
    common = {"size": "1024x1024", "quality": "low", "output_format": "png"}
    for index in range(2):
        event = {
            "type": "image_generation.partial_image",
            "b64_json": "cGFydA==",
            "created_at": 7 + index,  # the first event's time is the response's
            **common,
        }
        stream.add(
            "image_generation.partial_image", json.dumps({**event, "partial_image_index": index})
        )
    assert stream.result() == {"created": 7, "data": [], **common}
    assert not stream.completed
    usage = {"input_tokens": 3, "output_tokens": 272, "total_tokens": 275}
    final = {"type": "image_generation.completed", "b64_json": "ZmluYWw=", "usage": usage}
    stream.add("", json.dumps({**final, "created_at": 9, **common}))  # the type is in the data
    assert stream.completed and not stream.ended  # n > 1: more images may follow
    assert stream.result() == {
        "created": 7,
        "data": [{"b64_json": "ZmluYWw="}],
        **common,
        "usage": usage,
    }
    assert stream.attributes == {"images.partial_count": 2}
    stream.add("error", json.dumps({"type": "error", "error": {"message": "boom"}}))
    assert stream.ended
    assert stream.result()["error"] == {"message": "boom"}  # type: ignore[index]
    stream.add("", "not json")
    assert stream.problems == ["stream event is not JSON: 'not json'"]


# --- the dev server's endpoint --------------------------------------------------------------


@pytest.fixture
def http(server: DevServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_devserver_urls_and_b64(http: httpx.Client) -> None:
    body = {"model": "dall-e-2", "prompt": PROMPT, "n": 3, "size": "256x256"}
    urls = http.post("/v1/images/generations", json=body).json()
    assert set(urls) == {"created", "data"}
    assert len(urls["data"]) == 3
    image = http.get(urls["data"][0]["url"])
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(PNG_SIGNATURE)
    b64 = http.post("/v1/images/generations", json={**body, "response_format": "b64_json"}).json()
    assert [png_size(d["b64_json"]) for d in b64["data"]] == [(256, 256)] * 3
    assert base64.b64decode(b64["data"][0]["b64_json"]) == image.content  # one image, two ways
    assert len({d["b64_json"] for d in b64["data"]}) == 3


def test_devserver_gpt_image_usage_and_errors(http: httpx.Client) -> None:
    body = {"model": "gpt-image-1", "prompt": PROMPT, "size": "1536x1024", "quality": "low"}
    reply = http.post("/v1/images/generations", json=body).json()
    assert reply["usage"]["output_tokens"] == 408
    assert (reply["size"], reply["quality"], reply["output_format"]) == ("1536x1024", "low", "png")
    assert png_size(reply["data"][0]["b64_json"]) == (1536, 1024)
    bad = http.post("/v1/images/generations", json={"model": "dall-e-3", "prompt": "x", "n": 2})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "n"
    failing = http.post("/v1/images/generations", json=body, headers={"x-devserver-status": "503"})
    assert failing.status_code == 503 and failing.json()["error"]["type"] == "server_error"


# --- spans through the real SDK ---------------------------------------------------------------


def test_generate_records_a_tool_span(sdk: Chat, experiment: str) -> None:
    response = sdk.call(
        "images.generate", model="gpt-image-1", prompt=PROMPT, n=2, size="1536x1024"
    )
    span = only_tool_span(experiment)
    assert span.name == "image_generation gpt-image-1"
    assert span.status.status_code == "OK"
    assert span.inputs == {"model": "gpt-image-1", "prompt": PROMPT, "n": 2, "size": "1536x1024"}
    attrs = span.attributes
    assert "prompt" not in attrs
    assert attrs["n"] == 2 and attrs["size"] == "1536x1024"
    assert attrs["tracer.api"] == "images.generations"
    assert attrs["gen_ai.operation.name"] == "image_generation"
    assert attrs["mlflow.llm.model"] == "gpt-image-1"
    assert "mlflow.message.format" not in attrs
    assert attrs["mlflow.chat.tokenUsage"] == {
        "input_tokens": response.usage.input_tokens,
        "output_tokens": response.usage.output_tokens,
        "total_tokens": response.usage.total_tokens,
    }
    assert attrs["images.count"] == 2
    assert (attrs["images.size"], attrs["images.quality"]) == ("1536x1024", "medium")
    assert (attrs["images.output_format"], attrs["images.background"]) == ("png", "opaque")
    images = [d.b64_json for d in response.data]
    assert len(images[0]) > 1024  # a real payload, not a token string
    expected = response.to_dict()
    expected["data"] = [{"b64_json": placeholder(b64)} for b64 in images]
    assert span.outputs == expected
    assert images[0][:200] not in stored(experiment)


def test_images_kept_when_media_is_captured(server: DevServer, experiment: str) -> None:
    sdk = Chat("sync", server.base_url, TracerConfig(capture_media=True))
    response = sdk.call("images.generate", model="gpt-image-1", prompt=PROMPT)
    span = only_tool_span(experiment)
    b64 = response.data[0].b64_json
    recorded = span.outputs["data"][0]["b64_json"]
    # As sent, or stored by MLflow as a trace attachment (MLFLOW_TRACE_EXTRACT_ATTACHMENTS).
    assert recorded == b64 or (
        recorded.startswith("mlflow-attachment://")
        and "content_type=image%2Fpng" in recorded
        and f"size={len(base64.b64decode(b64))}" in recorded
    ), recorded[:200]
    assert {k: v for k, v in span.outputs.items() if k != "data"} == {
        k: v for k, v in response.to_dict().items() if k != "data"
    }


def test_urls_and_revised_prompt(sdk: Chat, experiment: str) -> None:
    response = sdk.call("images.generate", model="dall-e-3", prompt=PROMPT)
    span = only_tool_span(experiment)
    assert response.data[0].url and response.data[0].revised_prompt
    assert span.outputs == response.to_dict()  # nothing to omit
    assert span.attributes["images.count"] == 1
    assert span.attributes["mlflow.llm.model"] == "dall-e-3"
    assert "mlflow.chat.tokenUsage" not in span.attributes  # DALL-E reports no usage


def test_capture_content_off(server: DevServer, experiment: str) -> None:
    sdk = Chat("sync", server.base_url, TracerConfig(capture_content=False))
    response = sdk.call("images.generate", model="dall-e-3", prompt=PROMPT, size="1792x1024")
    span = only_tool_span(experiment)
    assert span.inputs == {"model": "dall-e-3", "size": "1792x1024"}
    assert span.outputs == {"created": response.created, "data": [{}]}
    assert span.attributes["images.count"] == 1
    dump = stored(experiment)
    assert PROMPT not in dump and response.data[0].revised_prompt not in dump
    assert response.data[0].url not in dump


@pytest.mark.parametrize(
    ("extra", "status", "message"),
    [
        ({"n": 2}, 400, "Invalid 'n'"),
        ({"extra_headers": {"x-devserver-status": "400"}}, 400, "Invalid request"),
        ({"extra_headers": {"x-devserver-status": "500"}}, 500, "server had an error"),
    ],
)
def test_http_error(
    server: DevServer, experiment: str, extra: dict[str, Any], status: int, message: str
) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        Chat("sync", server.base_url).call(
            "images.generate", model="dall-e-3", prompt=PROMPT, **extra
        )
    assert raised.value.status_code == status
    span = only_tool_span(experiment)
    body = raised.value.body
    assert isinstance(body, dict) and message in body["message"]
    assert span.status.status_code == "ERROR"
    assert span.status.description == body["message"]
    assert span.attributes["http.response.status_code"] == status
    assert span.outputs == {"error": body}
    assert exception_events(span) == [
        {"exception.type": f"HTTP {status}", "exception.message": body["message"]}
    ]


def test_stream_equals_the_non_streaming_response(sdk: Chat, experiment: str) -> None:
    request = {"model": "gpt-image-1", "prompt": PROMPT, "quality": "low"}
    sdk.call("images.generate", **request)
    events = sdk.call("images.generate", **request, stream=True, partial_images=2)
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + [
        "image_generation.completed"
    ]
    plain, streamed = read_spans(experiment, "TOOL")
    assert streamed.name == "image_generation gpt-image-1"
    assert streamed.status.status_code == "OK"
    attrs = streamed.attributes
    assert attrs["stream.completed"] is True
    assert attrs["stream.chunk_count"] == 3
    assert attrs["images.partial_count"] == 2
    assert attrs["mlflow.chat.tokenUsage"]["output_tokens"] == events[-1].usage.output_tokens
    assert streamed.outputs["data"] == [{"b64_json": placeholder(events[-1].b64_json)}]
    assert streamed.outputs["created"] == events[-1].created_at

    def without_created(outputs: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in outputs.items() if k != "created"}

    assert without_created(streamed.outputs) == without_created(plain.outputs)


def test_stream_error_event(server: DevServer, experiment: str) -> None:
    with pytest.raises(openai.APIError, match="error while generating"):
        Chat("sync", server.base_url).call(
            "images.generate",
            model="gpt-image-1",
            prompt=PROMPT,
            stream=True,
            partial_images=2,
            extra_headers={"x-devserver-stream-error-after": "1"},
        )
    span = only_tool_span(experiment)
    assert span.status.status_code == "ERROR"
    assert span.status.description == STREAM_ERROR_MESSAGE
    assert span.attributes["stream.completed"] is False
    assert span.attributes["images.partial_count"] == 1
    assert span.outputs["data"] == []
    assert span.outputs["error"]["message"] == STREAM_ERROR_MESSAGE


def test_azure_deployment(server: DevServer, experiment: str) -> None:
    response = Chat("sync", "").call(
        "images.generate",
        client_class=(openai.AzureOpenAI, openai.AsyncAzureOpenAI),
        client_kwargs={
            "azure_endpoint": server.url,
            "api_key": "azure-key-SECRET-31",
            "api_version": "2024-10-21",
            "azure_deployment": "my-dalle-deploy",
        },
        model="my-dalle-deploy",
        prompt=PROMPT,
    )
    assert server.requests[-1].path.startswith(
        "/openai/deployments/my-dalle-deploy/images/generations?"
    )
    span = only_tool_span(experiment)
    assert span.name == "image_generation my-dalle-deploy"
    assert span.attributes["azure.openai.deployment"] == "my-dalle-deploy"
    assert span.attributes["mlflow.llm.provider"] == "azure"
    assert span.outputs == response.to_dict()
    assert "content_filter_results" in span.outputs["data"][0]
    assert "azure-key-SECRET-31" not in stored(experiment)


def test_edits_and_image_downloads_are_not_traced(server: DevServer, experiment: str) -> None:
    # /images/edits is a multipart upload: not a recognised path (the dev server has no such
    # endpoint either, so the SDK sees a 404).
    with pytest.raises(openai.NotFoundError):
        Chat("sync", server.base_url).call(
            "images.edit", image=("in.png", b"\x89PNG\r\n\x1a\n", "image/png"), prompt=PROMPT
        )
    assert server.requests[-1].path == "/v1/images/edits"
    urls = Chat("sync", server.base_url).call("images.generate", prompt=PROMPT, n=2)
    with TracedClient() as client:
        assert client.get(urls.data[0].url).content.startswith(PNG_SIGNATURE)
    spans = read_spans(experiment)
    assert [(s.name, s.attributes["tracer.api"]) for s in spans] == [
        ("image_generation", "images.generations")  # the generation, without a model
    ]
