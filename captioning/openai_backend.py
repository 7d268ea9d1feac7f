"""An OpenAI-compatible chat-completions client (any `vllm serve`, say), asynchronous with aiohttp.

Why our own async client rather than Ray Data LLM's HTTP processor: captioning needs a second, conditioned
request per failing caption (QA feedback), bounded concurrency against one endpoint, capped backoff on 429 /
5xx / timeouts, and an error row (never an exception) per clip when the endpoint keeps failing; one small
event loop does all of that, and the frames are prepared next to it.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import aiohttp

from captioning.config import OpenAIConfig
from captioning.frames import data_url, video_data_url
from captioning.prompts import SYSTEM

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class MalformedResponse(ValueError):
    """The server answered 200 with a body that is not a chat completion."""


def build_request(cfg: OpenAIConfig, prompt: str, jpegs: list[bytes]) -> dict[str, Any]:
    """Chat-completions payload: system text, then the frames (images, or one video) and the prompt."""
    if cfg.video and jpegs:
        media = [{"type": "video_url", "video_url": {"url": video_data_url(jpegs)}}]
    else:
        media = [{"type": "image_url", "image_url": {"url": data_url(j)}} for j in jpegs]
    return {
        "model": cfg.model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": [*media, {"type": "text", "text": prompt}]},
        ],
        "max_tokens": cfg.max_tokens,
        "temperature": cfg.temperature,
    }


def parse_response(body: bytes | str) -> str:
    """The caption text of a chat-completions response body."""
    try:
        data = json.loads(body)
        text = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        preview = (body[:120] if isinstance(body, str) else body[:120].decode("utf-8", "replace"))
        raise MalformedResponse(f"malformed response ({type(exc).__name__}): {preview!r}") from None
    if isinstance(text, list):  # some servers return content parts
        text = "".join(part.get("text", "") for part in text if isinstance(part, dict))
    if not isinstance(text, str) or not text.strip():
        raise MalformedResponse("empty caption in response")
    return " ".join(text.split())


class OpenAIClient:
    """Sends many requests with bounded concurrency; each ends as (text, None) or (None, error)."""

    def __init__(self, cfg: OpenAIConfig):
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(cfg.api_key_env)
        self.headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}

    def complete_many(self, payloads: list[dict[str, Any]]) -> list[tuple[str | None, str | None]]:
        return asyncio.run(self._complete_all(payloads))

    async def _complete_all(self, payloads: list[dict[str, Any]]) -> list[tuple[str | None, str | None]]:
        limit = asyncio.Semaphore(self.cfg.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
        connector = aiohttp.TCPConnector(limit=self.cfg.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector, headers=self.headers) as session:

            async def one(payload: dict[str, Any]) -> tuple[str | None, str | None]:
                async with limit:
                    return await self._complete(session, payload)

            return list(await asyncio.gather(*(one(p) for p in payloads)))

    async def _complete(self, session: aiohttp.ClientSession, payload: dict) -> tuple[str | None, str | None]:
        last = "no attempt"
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                await asyncio.sleep(min(self.cfg.backoff_max_s, self.cfg.backoff_s * 2 ** (attempt - 1)))
            try:
                async with session.post(self.url, json=payload) as response:
                    body = await response.read()
                    if response.status == 200:
                        return parse_response(body), None
                    last = f"HTTP {response.status}: {body[:200].decode('utf-8', 'replace')}"
                    if response.status not in RETRY_STATUS:
                        break
            except MalformedResponse as exc:
                last = str(exc)
            except TimeoutError:
                last = f"timed out after {self.cfg.timeout_s:g} s"
            except aiohttp.ClientError as exc:
                last = f"{type(exc).__name__}: {exc}"
        return None, f"{last} (after {attempt + 1} attempts)"
