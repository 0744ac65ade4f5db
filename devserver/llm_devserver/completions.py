"""Legacy OpenAI completions (``POST .../completions``, object ``text_completion``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llm_devserver import azure
from llm_devserver.chat import openai_stream_error
from llm_devserver.common import (
    ALT_TOKENS,
    ApiError,
    Controls,
    JsonReply,
    Reply,
    StreamReply,
    as_int,
    count_tokens,
    data_frame,
    default_answer,
    logprob_value,
    rand_alnum,
    required_model,
    split_pieces,
    truncate_keep,
)

__all__ = ["completions_reply"]

DEFAULT_MAX_TOKENS = 16  # the legacy endpoint's documented default
ENDOFTEXT = "<|endoftext|>"
_INVALID_PROMPT = (
    "'$.prompt' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


@dataclass
class _Prompt:
    text: str
    tokens: int


@dataclass
class _Choice:
    index: int
    prompt: _Prompt
    text: str  # the generated text (without the echoed prompt)
    finish_reason: str
    tokens: int


def _is_token_list(value: Any) -> bool:
    return isinstance(value, list) and all(as_int(t) is not None for t in value)


def _prompts(value: Any) -> list[_Prompt]:
    """The prompts of a request: a string, strings, token ids, or lists of token ids."""
    if value is None:
        return [_Prompt(ENDOFTEXT, 1)]
    if isinstance(value, str):
        return [_Prompt(value, count_tokens(value))]
    if _is_token_list(value) and value:
        return [_Prompt(" ".join(str(t) for t in value), len(value))]
    if isinstance(value, list) and value:
        prompts: list[_Prompt] = []
        for item in value:
            if isinstance(item, str):
                prompts.append(_Prompt(item, count_tokens(item)))
            elif _is_token_list(item) and item:
                prompts.append(_Prompt(" ".join(str(t) for t in item), len(item)))
            else:
                raise ApiError(_INVALID_PROMPT, param="prompt")
        return prompts
    raise ApiError(_INVALID_PROMPT, param="prompt")


def _continuation(prompt: str) -> str:
    """What an instruct model writes after ``prompt`` (a blank line, then an answer)."""
    if prompt == ENDOFTEXT:
        return "\n\nThis is a completion from the local server."
    return "\n\n" + default_answer(prompt)


def _top_dict(token: str, top: int, logprob: float) -> dict[str, float]:
    alternatives = [token, *[a for a in ALT_TOKENS if a != token]][:top]
    return {
        alt: logprob if j == 0 else round(logprob - 1.75 * j - 0.25, 6)
        for j, alt in enumerate(alternatives)
    }


@dataclass
class _Completions:
    ctl: Controls
    completion_id: str
    created: int
    model: str
    fingerprint: str
    choices: list[_Choice]
    usage: dict[str, Any]
    echo: bool
    logprobs: int | None
    azure: bool

    def tokens(
        self, choice: _Choice
    ) -> list[tuple[str, float | None, dict[str, float] | None, int]]:
        """``(token, logprob, top_logprobs, text_offset)`` of the choice's returned text."""
        out: list[tuple[str, float | None, dict[str, float] | None, int]] = []
        offset = 0
        top = self.logprobs or 0
        if self.echo:
            for k, piece in enumerate(split_pieces(choice.prompt.text)):
                if k == 0:  # the first prompt token has no logprob (nothing precedes it)
                    out.append((piece, None, None, offset))
                else:
                    lp = logprob_value(k)
                    out.append((piece, lp, _top_dict(piece, top, lp), offset))
                offset += len(piece)
        else:
            offset = len(choice.prompt.text)
        for k, piece in enumerate(split_pieces(choice.text)):
            lp = logprob_value(k)
            out.append((piece, lp, _top_dict(piece, top, lp), offset))
            offset += len(piece)
        return out

    def logprobs_obj(
        self, tokens: list[tuple[str, float | None, dict[str, float] | None, int]]
    ) -> dict[str, Any]:
        """The ``logprobs`` object of a choice: parallel token/logprob/top/offset lists."""
        return {
            "tokens": [t[0] for t in tokens],
            "token_logprobs": [t[1] for t in tokens],
            "top_logprobs": [t[2] for t in tokens],
            "text_offset": [t[3] for t in tokens],
        }

    def choice_obj(self, choice: _Choice) -> dict[str, Any]:
        """One ``choices[i]`` object of the non-streamed completion."""
        text = (choice.prompt.text if self.echo else "") + choice.text
        item: dict[str, Any] = {
            "text": text,
            "index": choice.index,
            "logprobs": self.logprobs_obj(self.tokens(choice))
            if self.logprobs is not None
            else None,
            "finish_reason": choice.finish_reason,
        }
        if self.azure:
            item["content_filter_results"] = azure.completion_filter_results()
        return item

    def completion(self) -> dict[str, Any]:
        """The whole ``text_completion`` object."""
        payload: dict[str, Any] = {
            "id": self.completion_id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": [self.choice_obj(c) for c in self.choices],
            "usage": self.usage,
        }
        if self.azure:
            n_prompts = len({id(c.prompt) for c in self.choices})
            payload["prompt_filter_results"] = azure.prompt_filter_results(n_prompts)
        return payload

    def choice_pieces(self, choice: _Choice) -> Iterator[dict[str, Any]]:
        """The streamed ``choices[i]`` objects of one choice: text pieces, then the finish."""
        for token, lp, top, offset in self.tokens(choice):
            item: dict[str, Any] = {
                "text": token,
                "index": choice.index,
                "logprobs": {
                    "tokens": [token],
                    "token_logprobs": [lp],
                    "top_logprobs": [top],
                    "text_offset": [offset],
                }
                if self.logprobs is not None
                else None,
                "finish_reason": None,
            }
            if self.azure:
                item["content_filter_results"] = azure.completion_filter_results()
            yield item
        last: dict[str, Any] = {
            "text": "",
            "index": choice.index,
            "logprobs": None,
            "finish_reason": choice.finish_reason,
        }
        if self.azure:
            last["content_filter_results"] = {}
        yield last

    def stream(self, include_usage: bool) -> StreamReply:
        """The chunks, interleaved round-robin, then the usage chunk and ``[DONE]``."""

        def chunk(items: list[dict[str, Any]]) -> dict[str, Any]:
            obj: dict[str, Any] = {
                "id": self.completion_id,
                "object": "text_completion",
                "created": self.created,
                "choices": items,
                "model": self.model,
                "system_fingerprint": self.fingerprint,
            }
            if include_usage or self.azure:
                obj["usage"] = None
            return obj

        events: list[dict[str, Any]] = []
        if self.azure:
            n_prompts = len({id(c.prompt) for c in self.choices})
            first = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
            first["prompt_filter_results"] = azure.prompt_filter_results(n_prompts)
            events.append(first)
        iterators = [self.choice_pieces(c) for c in self.choices]
        while iterators:
            for it in list(iterators):
                nxt = next(it, None)
                if nxt is None:
                    iterators.remove(it)
                else:
                    events.append(chunk([nxt]))
        if include_usage:
            final = chunk([])
            final["usage"] = self.usage
            events.append(final)
        frames = [data_frame(e) for e in events]
        return StreamReply(frames, openai_stream_error, trailer=b"data: [DONE]\n\n")


def _int_param(request: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = request.get(name)
    if value is None:
        return default
    number = as_int(value)
    if number is None:
        raise ApiError(
            f"Invalid type for '{name}': expected an integer, but got {type(value).__name__}.",
            param=name,
            code="invalid_type",
        )
    if number < low:
        raise ApiError(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
            f"but got {number} instead.",
            param=name,
            code="integer_below_min_value",
        )
    if number > high:
        raise ApiError(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, "
            f"but got {number} instead.",
            param=name,
            code="integer_above_max_value",
        )
    return number


def completions_reply(
    request: dict[str, Any],
    ctl: Controls,
    *,
    fingerprint: str,
    model: str | None = None,
    azure_style: bool = False,
) -> Reply:
    """Answer a legacy completions request; ``model`` overrides the body's (Azure, Databricks)."""
    model = required_model(request, model)
    prompts = _prompts(request.get("prompt"))
    n = _int_param(request, "n", 1, 1, 128)
    best_of = _int_param(request, "best_of", n, 1, 20)
    if best_of < n:
        raise ApiError("best_of must be greater than or equal to n.", param="best_of")
    stream = request.get("stream") is True
    if stream and best_of > n:  # the server must pick the best candidates before answering
        raise ApiError("Cannot stream results when best_of > n.", param="best_of")
    max_tokens = _int_param(request, "max_tokens", DEFAULT_MAX_TOKENS, 0, 1_000_000)
    logprobs = request.get("logprobs")
    logprobs = None if logprobs is None else _int_param(request, "logprobs", 0, 0, 5)
    echo = request.get("echo") is True
    suffix = request.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise ApiError("Invalid type for 'suffix': expected a string.", param="suffix")

    choices: list[_Choice] = []
    completion_tokens = 0
    for p_index, prompt in enumerate(prompts):
        for i in range(n):
            text = ctl.reply if ctl.reply is not None else _continuation(prompt.text)
            if i > 0 and ctl.reply is not None:
                text = f"(choice {i}) {text}"
            elif i > 0:
                text = f"\n\n(choice {i}) {text.lstrip()}"
            text, cut = truncate_keep(text, max_tokens)
            tokens = count_tokens(text)
            choices.append(
                _Choice(p_index * n + i, prompt, text, "length" if cut else "stop", tokens)
            )
            completion_tokens += tokens
        # best_of > n: the extra candidates are generated (and billed) but not returned
        completion_tokens += (best_of - n) * choices[-n].tokens
    prompt_tokens = sum(p.tokens for p in prompts) + count_tokens(suffix or "")
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    completions = _Completions(
        ctl=ctl,
        completion_id="cmpl-" + rand_alnum(29),
        created=int(time.time()),
        model=model,
        fingerprint=fingerprint,
        choices=choices,
        usage=usage,
        echo=echo,
        logprobs=logprobs,
        azure=azure_style,
    )
    if stream:
        options = request.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return completions.stream(include_usage)
    return JsonReply(completions.completion())
