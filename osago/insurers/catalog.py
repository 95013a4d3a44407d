"""Loading the insurers file (TOML): defaults, per-insurer overrides, checked with clear errors."""

from __future__ import annotations

import tomllib
from dataclasses import fields, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from osago.config import Settings
from osago.errors import ConfigError
from osago.insurers.config import FAILURE_KINDS, InsurerConfig
from osago.insurers.schedule import SchedulePolicy
from osago.resilience import BreakerPolicy, BudgetPolicy, BulkheadPolicy, RetryPolicy

__all__ = ["CALLBACK_PATH", "insurers_for", "load_insurers"]

# Where an insurer in callback mode POSTs its answer, under OSAGO_CALLBACK_URL (the api's).
CALLBACK_PATH = "/api/v1/callbacks/{code}"

_POLICIES: dict[str, type] = {
    "retry": RetryPolicy,
    "budget": BudgetPolicy,
    "breaker": BreakerPolicy,
    "bulkhead": BulkheadPolicy,
    "schedule": SchedulePolicy,
}


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _insurer(raw: dict[str, Any], defaults: dict[str, Any], base: str, where: str) -> InsurerConfig:
    if not isinstance(raw.get("code"), str) or not raw["code"]:
        raise ConfigError(f"{where}: every insurer needs a code")
    merged: dict[str, Any] = {**{k: v for k, v in defaults.items() if k not in _POLICIES}}
    merged.update({k: v for k, v in raw.items() if k not in _POLICIES})
    merged.setdefault("name", raw["code"])
    merged.setdefault("base_url", f"{base}/{raw['code']}")
    for key, cls in _POLICIES.items():
        section = {**defaults.get(key, {}), **raw.get(key, {})}
        merged[key] = _build(cls, section, f"{where} [{raw['code']}.{key}]")
    failures = tuple(merged.get("failures", InsurerConfig.failures))
    if not set(failures) <= set(FAILURE_KINDS):
        raise ConfigError(
            f"{where} [{raw['code']}]: failures must be among {sorted(FAILURE_KINDS)}"
        )
    merged["failures"] = failures
    config: InsurerConfig = _build(InsurerConfig, merged, f"{where} [{raw['code']}]")
    if config.mode not in ("poll", "long-poll", "callback"):
        raise ConfigError(f"{where} [{raw['code']}]: mode must be poll, long-poll or callback")
    if config.long_poll and config.breaker.slow_call_duration <= config.poll_attempt_timeout:
        # A long poll is slow by design: counted as a slow call, it would open the breaker.
        raise ConfigError(
            f"{where} [{raw['code']}]: a long-poll insurer needs breaker.slow_call_duration "
            f"above poll_timeout + long_poll_wait ({config.poll_attempt_timeout:g} s)"
        )
    if config.poll_hedge is not None:
        _check_hedge(config, config.poll_hedge, f"{where} [{raw['code']}]")
    return config


def _check_hedge(config: InsurerConfig, delay: float, where: str) -> None:
    """A hedge is a second status request while the first is still out."""
    if delay < config.schedule.min_interval:
        # The contract's rate limit counts requests, hedges included.
        raise ConfigError(
            f"{where}: hedge_delay must be at least schedule.min_interval "
            f"({config.schedule.min_interval:g} s): a hedge is a request too"
        )
    if delay >= config.poll_timeout:
        raise ConfigError(
            f"{where}: hedge_delay must be below poll_timeout ({config.poll_timeout:g} s), "
            "or the attempt times out before the hedge starts"
        )


@lru_cache(maxsize=16)
def _read(path: Path | None) -> tuple[str, dict[str, Any]]:
    if path is None:
        text = resources.files("osago.insurers").joinpath("insurers.toml").read_text()
        where = "bundled insurers.toml"
    else:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"OSAGO_INSURERS_FILE={path}: {exc.strerror}") from exc
        where = str(path)
    try:
        return where, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_insurers(
    path: Path | None, *, default_base: str, codes: tuple[str, ...] | None = None
) -> tuple[InsurerConfig, ...]:
    """The insurers of ``path`` (or the bundled file); ``codes`` selects and orders them.

    A code in ``codes`` that the file does not list gets the defaults.
    """
    where, data = _read(path)
    defaults = data.get("defaults", {})
    listed = {raw.get("code"): raw for raw in data.get("insurers", [])}
    chosen = codes if codes is not None else tuple(listed)
    return tuple(
        _insurer(listed.get(code, {"code": code}), defaults, default_base, where) for code in chosen
    )


def insurers_for(settings: Settings) -> tuple[InsurerConfig, ...]:
    """The insurers to fan out to: OSAGO_INSURERS_FILE (or the bundled file), OSAGO_INSURERS
    selecting, based at OSAGO_INSURERS_URL (or the simulator's address)."""
    base = (settings.insurers_url or f"http://{settings.insurers_bind}").rstrip("/")
    loaded = load_insurers(settings.insurers_file, default_base=base, codes=settings.insurer_codes)
    if settings.callback_url is None:  # callbacks cannot reach us: they are polled
        return loaded
    base = settings.callback_url.rstrip("/")
    return tuple(
        replace(c, callback_url=base + CALLBACK_PATH.format(code=c.code))
        if c.mode == "callback"
        else c
        for c in loaded
    )
