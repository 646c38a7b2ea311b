"""Settings base shared by every role.

Each role defines one ``Settings`` subclass with its own env prefix (``KINITRO_BACKEND_``,
``KINITRO_VALIDATOR_`` …). Values come from, in order of precedence: explicit keyword
arguments, environment variables, an optional TOML file (``--config`` on the CLI or
``KINITRO_CONFIG``), then defaults. Settings are built in ``main()`` and passed down;
there are no module-level singletons.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from kinitro.core.errors import ConfigError

PLACEHOLDER_SECRETS = frozenset({"", "changethis", "change-me", "devnet", "secret", "password"})


class KinitroSettings(BaseSettings):
    """Base class: env prefix per subclass, optional TOML file, placeholder-secret guard.

    ``environment`` is ``devnet`` for the embedded single-machine network, ``production``
    otherwise. Outside the devnet, fields listed in ``secret_fields`` must not hold a
    placeholder value.
    """

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    environment: str = "devnet"

    # Section of the TOML file this role reads ("backend", "validator", ...).
    toml_section: ClassVar[str | None] = None
    secret_fields: ClassVar[tuple[str, ...]] = ()
    _toml_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = cls._toml_file or _env_config_path()
        if path is not None:
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            sources.append(InitSettingsSource(settings_cls, _read_toml(path, cls.toml_section)))
        return tuple(sources)

    @classmethod
    def load(cls, config: Path | None = None, **overrides: Any) -> Self:
        """Build settings from ``config`` (TOML), the environment and ``overrides``."""
        cls._toml_file = config
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        finally:
            cls._toml_file = None

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.environment == "devnet":
            return self
        for name in self.secret_fields:
            value = getattr(self, name)
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            if raw is None or str(raw).strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    f"{name} must be set to a real secret when environment={self.environment!r}"
                )
        return self


def _env_config_path() -> Path | None:
    raw = os.environ.get("KINITRO_CONFIG")
    return Path(raw) if raw else None


def _read_toml(path: Path, section: str | None) -> dict[str, Any]:
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if section is None:
        return data
    part = data.get(section, {})
    if not isinstance(part, dict):
        raise ConfigError(f"[{section}] in {path} must be a table")
    return part


def describe_settings_error(exc: Exception, settings_cls: type[BaseSettings]) -> str:
    """One line naming each invalid setting with where it comes from (env var / TOML)."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    section = getattr(settings_cls, "toml_section", None)
    parts: list[str] = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        loc = ".".join(str(p) for p in err.get("loc", ()))
        if not loc:
            parts.append(msg)
            continue
        field = loc.split(".")[0]
        where = f"{prefix}{field.upper()}" + (f" or [{section}] {field}" if section else "")
        got = err.get("input")
        shown = (
            f" (got {got!r})" if isinstance(got, str | int | float) and len(repr(got)) < 80 else ""
        )
        parts.append(f"invalid setting {loc} ({where}): {msg}{shown}")
    return "; ".join(parts)
