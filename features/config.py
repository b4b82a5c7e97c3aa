"""Where the feature store lives and which stores it uses, from settings and the environment.

=============================  ==============================================================
``RECOUP_FEATURES_DIR``        the feature store's directory (default ``<data dir>/features``):
                               ``tables/`` (the feature tables), ``registry.db``, ``online.db``
``RECOUP_FEAST_ONLINE``        the online store: empty for SQLite in the features directory,
                               ``sqlite:///path/online.db``, or ``redis://host:port/db``
                               (``rediss://`` for TLS; ``redis://:password@host:port/db``)
``RECOUP_FEAST_REGISTRY``      the registry: empty for a file in the features directory, a file
                               path, or a SQLAlchemy URL (``postgresql+psycopg://...``) for
                               Feast's SQL registry
``RECOUP_FEAST_PROJECT``       the Feast project (``recoup``)
``RECOUP_FEAST_OFFLINE``       ``asof`` (default): Feast's DuckDB offline store with point-in-time
                               joins run as DuckDB ASOF joins; ``duckdb``: the stock DuckDB store
=============================  ==============================================================

``features/repo/feature_store.yaml`` (SQLite online) and ``feature_store.redis.yaml`` (Redis
online) are the Feast configurations; :meth:`FeatureStoreSettings.environment` gives the values of
the ``${...}`` variables they use, and :func:`open_store` picks the file, sets them and opens the
store. No setting ever enables telemetry: :func:`quiet` turns Feast's and its libraries' off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

REPO_DIR = Path(__file__).resolve().parent / "repo"
OFFLINE_STORES = {
    "asof": "features.asof_offline_store.AsofDuckDBOfflineStore",
    "duckdb": "duckdb",
}


class FeatureStoreConfigError(ValueError):
    """A feature store setting has a value Recoup cannot use; the message names it."""


def quiet() -> None:
    """No network from the libraries: telemetry and lineage off before feast is imported."""
    for name, value in (
        ("DO_NOT_TRACK", "true"),
        ("FEAST_USAGE", "False"),
        ("FEAST_OPENLINEAGE_ENABLED", "false"),
    ):
        os.environ.setdefault(name, value)


def tables_dir_from_env(env: Mapping[str, str] | None = None) -> Path:
    """The feature tables' directory the Feast data sources point at.

    ``RECOUP_FEATURES_DIR`` when set, else ``<RECOUP_DATA_DIR or ./data>/features``; made absolute.
    """
    env = os.environ if env is None else env
    features = env.get("RECOUP_FEATURES_DIR") or str(Path(env.get("RECOUP_DATA_DIR") or "data") / "features")
    return Path(features).resolve() / "tables"


def redis_connection_string(url: str) -> str:
    """``redis://:pw@host:6379/2`` as Feast's ``host:6379,db=2,password=pw`` (``ssl=true`` for rediss)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise FeatureStoreConfigError(f"RECOUP_FEAST_ONLINE: expected redis://host:port/db, got {url!r}")
    text = f"{parts.hostname}:{parts.port or 6379}"
    db = parts.path.strip("/")
    if db:
        if not db.isdigit():
            raise FeatureStoreConfigError(f"RECOUP_FEAST_ONLINE: the database must be a number, got {db!r}")
        text += f",db={db}"
    if parts.password:
        text += f",password={unquote(parts.password)}"
    if parts.scheme == "rediss":
        text += ",ssl=true"
    return text


@dataclass(frozen=True)
class FeatureStoreSettings:
    features_dir: Path
    lake_dir: Path
    online: str = ""
    registry: str = ""
    project: str = "recoup"
    offline: str = "asof"

    @classmethod
    def from_env(
        cls, data_dir: Path | str, lake_dir: Path | str | None = None, env: Mapping[str, str] | None = None
    ) -> FeatureStoreSettings:
        """The settings for a data directory, with the ``RECOUP_FEAST_*`` and ``RECOUP_FEATURES_DIR`` overrides."""
        env = os.environ if env is None else env
        data = Path(data_dir)
        features = Path(env.get("RECOUP_FEATURES_DIR") or data / "features").resolve()
        settings = cls(
            features_dir=features,
            lake_dir=Path(lake_dir if lake_dir is not None else data / "lake").resolve(),
            online=env.get("RECOUP_FEAST_ONLINE", "").strip(),
            registry=env.get("RECOUP_FEAST_REGISTRY", "").strip(),
            project=env.get("RECOUP_FEAST_PROJECT", "").strip() or "recoup",
            offline=env.get("RECOUP_FEAST_OFFLINE", "").strip() or "asof",
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.offline not in OFFLINE_STORES:
            raise FeatureStoreConfigError(
                f"RECOUP_FEAST_OFFLINE: expected one of {', '.join(OFFLINE_STORES)}, got {self.offline!r}"
            )
        if not self.project.replace("_", "").isalnum():
            raise FeatureStoreConfigError(
                f"RECOUP_FEAST_PROJECT: expected letters, digits and underscores, got {self.project!r}"
            )
        if self.online_kind == "redis":
            redis_connection_string(self.online)

    @property
    def tables_dir(self) -> Path:
        return self.features_dir / "tables"

    @property
    def online_kind(self) -> str:
        scheme = urlsplit(self.online).scheme if "://" in self.online else ""
        if scheme in ("redis", "rediss"):
            return "redis"
        if scheme in ("", "sqlite"):
            return "sqlite"
        raise FeatureStoreConfigError(
            f"RECOUP_FEAST_ONLINE: expected empty, sqlite:///path or redis://host:port/db, got {self.online!r}"
        )

    @property
    def yaml_path(self) -> Path:
        """The Feast configuration this setting selects."""
        name = "feature_store.redis.yaml" if self.online_kind == "redis" else "feature_store.yaml"
        return REPO_DIR / name

    def environment(self) -> dict[str, str]:
        """The values of the variables ``feature_store*.yaml`` refers to."""
        env = {
            "RECOUP_FEATURES_DIR": str(self.features_dir),
            "RECOUP_FEAST_PROJECT": self.project,
            "RECOUP_FEAST_OFFLINE_TYPE": OFFLINE_STORES[self.offline],
        }
        if self.registry and "://" in self.registry and not self.registry.startswith("file://"):
            env["RECOUP_FEAST_REGISTRY_TYPE"] = "sql"
            env["RECOUP_FEAST_REGISTRY_PATH"] = self.registry
        else:
            path = self.registry.removeprefix("file://") or str(self.features_dir / "registry.db")
            env["RECOUP_FEAST_REGISTRY_TYPE"] = "file"
            env["RECOUP_FEAST_REGISTRY_PATH"] = str(Path(path).resolve())
        if self.online_kind == "redis":
            env["RECOUP_FEAST_REDIS"] = redis_connection_string(self.online)
        else:
            path = self.online.removeprefix("sqlite:///") or str(self.features_dir / "online.db")
            env["RECOUP_FEAST_ONLINE_PATH"] = str(Path(path).resolve())
        return env

    @contextmanager
    def applied(self) -> Iterator[None]:
        """These settings' variables in the process environment, the previous values back after."""
        values = self.environment()
        previous = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def repo_config(self) -> RepoConfig:
        """The Feast configuration: the selected yaml, its variables filled in from these settings."""
        quiet()
        from feast.repo_config import load_repo_config

        self.features_dir.mkdir(parents=True, exist_ok=True)
        with self.applied():
            return load_repo_config(REPO_DIR, self.yaml_path)


def open_store(settings: FeatureStoreSettings) -> FeatureStore:
    """A Feast ``FeatureStore`` over Recoup's repository, with these settings."""
    config = settings.repo_config()
    from feast import FeatureStore

    return FeatureStore(repo_path=str(REPO_DIR), config=config)
