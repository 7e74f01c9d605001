"""The CLI's configuration: where the control plane is and which token to use.

Owns the config file (``$GOVCLOUD_CONFIG``, else ``$XDG_CONFIG_HOME/govcloud/config.yaml``,
else ``~/.config/govcloud/config.yaml``; written with mode 0600 because it holds a bearer
token), the precedence rule (``GOVCLOUD_URL``/``GOVCLOUD_TOKEN`` override the file). The commands
that use it (``login``, ``logout``, ``config show``) live in :mod:`controlplane.cli.login`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from controlplane.cli.errors import CliProblem

CONFIG_ENV = "GOVCLOUD_CONFIG"
URL_ENV = "GOVCLOUD_URL"
TOKEN_ENV = "GOVCLOUD_TOKEN"  # noqa: S105 - the variable name, not a secret


class CliConfig(BaseModel):
    """What the config file holds."""

    model_config = ConfigDict(extra="ignore")

    url: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class Connection:
    """The URL and token in effect, and where each came from (for ``config show``)."""

    url: str | None
    token: str | None
    url_source: str
    token_source: str
    path: Path


def config_path(environ: Mapping[str, str]) -> Path:
    """Where the config file lives for this environment."""
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV]).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "govcloud" / "config.yaml"


def load_config(path: Path) -> CliConfig:
    """The saved configuration; empty when the file does not exist."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return CliConfig()
    except (OSError, yaml.YAMLError) as err:
        raise CliProblem(
            f"cannot read the config file {path}: {err}",
            hint="fix or remove the file, then run `govcloud login` again",
        ) from err
    try:
        return CliConfig.model_validate(raw or {})
    except ValidationError as err:
        raise CliProblem(
            f"the config file {path} is not a govcloud config: {err.errors()[0]['msg']}",
            hint="fix or remove the file, then run `govcloud login` again",
        ) from err


def save_config(path: Path, config: CliConfig) -> None:
    """Write the file atomically, readable only by its owner (it holds a token)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config.model_dump(exclude_none=True), handle, sort_keys=False)
        os.chmod(tmp, 0o600)  # the umask cannot widen it, but an existing file might be wider
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def resolve(environ: Mapping[str, str]) -> Connection:
    """Environment variables first, then the config file."""
    path = config_path(environ)
    saved = load_config(path)
    url, url_source = _pick(environ.get(URL_ENV), saved.url, URL_ENV, path)
    token, token_source = _pick(environ.get(TOKEN_ENV), saved.token, TOKEN_ENV, path)
    return Connection(url, token, url_source, token_source, path)


def _pick(
    env_value: str | None, saved: str | None, env_name: str, path: Path
) -> tuple[str | None, str]:
    if env_value:
        return env_value, f"${env_name}"
    if saved:
        return saved, str(path)
    return None, "not set"


def mask(token: str | None) -> str:
    """A token shown without giving it away."""
    if not token:
        return "-"
    return f"{token[:6]}...{token[-4:]}" if len(token) > 12 else "***"
