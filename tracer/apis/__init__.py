"""One module per wire API. Nothing here knows about httpx or MLflow: request and response
bodies are plain JSON values, and stream accumulators take decoded SSE events."""

from tracer.apis.base import ApiSpec, ResponseSummary, StreamAccumulator

__all__ = ["ApiSpec", "ResponseSummary", "StreamAccumulator"]
