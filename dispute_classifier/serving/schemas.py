"""The request and response shapes of the service, as pydantic models: the OpenAPI document
(``GET /openapi.json``) is generated from them, every field and every error described.

The classify route checks its body by hand (`app.validate_inputs`) so that each mistake gets
its own error ``type`` and names the offending input, and it writes its answer straight to
JSON (pydantic's encoder is slow on lists of floats); the tests check that both agree with
these models.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ClassifyRequest(BaseModel):
    """``POST /v1/classify``: texts to classify (vLLM's ``/classify`` shape)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(
        None, description="The served model's name, NAME:VERSION or the ref it was started with; omit for the champion."
    )
    input: str | list[str] = Field(
        ...,
        description="One text or a list of texts (at most --max-inputs, each at most --max-chars characters,"
        " valid Unicode without lone surrogates, not only whitespace).",
    )


class ClassifyItem(BaseModel):
    """The prediction for one input."""

    index: int = Field(..., description="Position of the text in ``input``.")
    label: str = Field(..., description="The predicted label (``INVALID`` when the model gave none).")
    confidence: float | None = Field(..., description="The model's confidence in ``label`` (0 to 1), or null when it has none.")
    abstain: bool = Field(..., description="True when the confidence is below ``min_confidence``: send this one to a person.")
    probs: list[float] = Field(..., description="Probability of every label, in the order of the response's ``labels``.")
    num_classes: int = Field(..., description="Number of labels (the length of ``probs``).")
    probabilities: dict[str, float] = Field(..., description="The same probabilities by label name.")


class Usage(BaseModel):
    """What the request cost (no tokens for a classifier)."""

    prompt_tokens: int = Field(0, description="Always 0: classifiers bill no tokens.")
    total_tokens: int = Field(0, description="Always 0.")
    inputs: int = Field(..., description="Number of texts classified.")


class ClassifyResponse(BaseModel):
    """``POST /v1/classify`` answer: one item per input, and the version that predicted them all."""

    id: str = Field(..., description="``classify-`` and the server's request id (also in the X-Request-Id response header and the log).")
    object: str = Field("list", description="Always ``list``.")
    created: int = Field(..., description="Unix time of the answer.")
    model: str = Field(..., description="Name of the model that predicted every item.")
    version: str = Field(..., description="Its version: the one that predicted, even when a reload happened meanwhile.")
    labels: list[str] = Field(..., description="That version's labels, the order of every ``probs``.")
    min_confidence: float = Field(..., description="That version's abstain threshold.")
    data: list[ClassifyItem]
    usage: Usage


class ErrorDetail(BaseModel):
    """What went wrong and what to change."""

    type: str = Field(
        ...,
        description="The kind of error, e.g. invalid_json, json_too_deep, body_too_large, invalid_text,"
        " text_too_long, unauthorized, not_found, queue_full, timeout, prediction_failed, reload_failed.",
    )
    message: str = Field(..., description="One sentence naming the problem and the fix.")
    param: str | None = Field(None, description="The offending field (``input[3]``), when there is one.")
    code: int = Field(..., description="The HTTP status.")


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer."""

    error: ErrorDetail


class ModelCard(BaseModel):
    """One served model version."""

    id: str = Field(..., description="Model name.")
    object: str = Field("model", description="Always ``model``.")
    version: str = Field(..., description="The version being served now.")
    ref: str = Field(..., description="What the service was started with (NAME, NAME:VERSION, NAME@ALIAS).")
    role: str = Field(..., description="``champion`` (answers) or ``shadow`` (logged beside it, never answers).")
    labels: list[str] = Field(..., description="Labels in the order of ``probs``.")
    min_confidence: float = Field(..., description="Abstain threshold.")
    alias_version: str | None = Field(None, description="For NAME@ALIAS: the version the alias names in the registry now (null otherwise).")
    in_sync: bool = Field(True, description="False when the alias names another version than the one served (a reload failed or is due).")


class ModelList(BaseModel):
    """``GET /v1/models`` and a good ``POST /v1/reload``."""

    object: str = Field("list", description="Always ``list``.")
    data: list[ModelCard]
    last_reload_error: str | None = Field(None, description="Why the latest reload failed (the old versions kept serving), or null.")


class Ready(BaseModel):
    """``GET /readyz``: 200 when the models are loaded and the service is not shutting down."""

    status: str = Field(..., description="``ready`` or ``not ready``.")
    model: str | None = Field(None, description="The champion's name.")
    version: str | None = Field(None, description="The champion version being served.")
    alias_version: str | None = Field(None, description="The version the champion's alias names now (null without an alias).")
    in_sync: bool = Field(True, description="False when the alias and the served version differ.")
    last_reload_error: str | None = Field(None, description="Why the latest reload failed, or null.")


ERRORS = {
    400: {"model": ErrorResponse, "description": "Malformed body: not JSON, nested too deeply, not an object, no or empty input."},
    401: {"model": ErrorResponse, "description": "Missing or wrong API key (with --api-key-env)."},
    404: {"model": ErrorResponse, "description": "Unknown model or path."},
    413: {"model": ErrorResponse, "description": "Body over --max-body-bytes, or more texts than --max-inputs."},
    415: {"model": ErrorResponse, "description": "Content-Type is not application/json."},
    422: {"model": ErrorResponse, "description": "An input that is not text, empty, too long, or not encodable as UTF-8 (lone surrogate)."},
    500: {"model": ErrorResponse, "description": "The model failed on this request; the service keeps running."},
    503: {"model": ErrorResponse, "description": "Queue full (--max-queue) or shutting down; retry after the Retry-After header."},
    504: {"model": ErrorResponse, "description": "No prediction within --request-timeout-s."},
}
"""The error answers of ``/v1/classify``, for the OpenAPI document."""
