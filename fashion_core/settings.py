"""One settings object for every component, read from ``FASHION_*`` env vars and an optional file.

Precedence (highest first): explicit keyword arguments, environment variables, the file named by
``FASHION_CONFIG`` (TOML or YAML), then the defaults below. Every default works with no server:
FAISS files on a local path, the encoder in-process, indexing tasks in-process.
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from fashion_core.errors import ConfigError, InvalidInputError

CONFIG_ENV_VAR = "FASHION_CONFIG"
# Text search modes (fashion_core/search.py) and hybrid fusion methods (fashion_core/fusion.py).
SearchMode = Literal["dense", "lexical", "hybrid"]
FusionMethod = Literal["rrf", "blend"]


def check_redis_url(url: str) -> str:
    """``url`` when both Redis clients (redis-py for the job store, Celery's broker) take it: redis:// or
    rediss:// with a host; InvalidInputError (a ValueError) saying what is expected otherwise (not naming
    ``url``: the caller says which setting or option it was)."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise InvalidInputError("not a valid port; expected redis://host:port/db") from None
    if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
        raise InvalidInputError("expected redis://host:port/db (or rediss://)")
    return url


def default_home() -> Path:
    return Path(os.environ.get("FASHION_HOME", Path.home() / ".cache" / "fashion-search"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FASHION_", extra="ignore")

    # Model: explicit checkpoint dir or hub id > cached checkpoint > bootstrapped model.
    model: str | None = Field(default=None, description="CLIP checkpoint directory or Hugging Face hub id")
    home: Path = Field(default_factory=default_home, description="cache root: bootstrapped models, data")
    train_threads: int | None = Field(
        default=None, ge=1, description="CPU threads the real recipe trains on; None = the recipe's own (2). Not part "
        "of its fingerprint: it changes the floating-point rounding only")
    catalog: Path | None = Field(default=None, description="the real catalog (styles.csv + images/); None = look "
                                                         "for ../shared/datasets/fashion-product-images-small")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    encode_batch_size: int = Field(default=32, gt=0)
    encoder_runtime: Literal["auto", "torch", "onnx"] = Field(
        default="auto", description="auto = ONNX Runtime when the checkpoint has an ONNX export for its current "
        "weights and the device is the CPU, else torch; onnx = ONNX Runtime, exporting first when there is no "
        "export (needs torch once); torch = never ONNX")

    # Index
    index_backend: Literal["auto", "qdrant", "faiss"] = Field(
        default="auto", description="auto = a Qdrant server when qdrant_url is set, else FAISS files in index_dir; "
                                    "qdrant without a URL = qdrant-client's embedded local mode")
    index_dir: Path = Field(default=Path(".fashion-search/index"), description="local Qdrant path / FAISS dir")
    qdrant_url: str | None = Field(default=None, description="Qdrant server URL; None = embedded local mode")
    qdrant_api_key: str | None = None
    index_name: str = Field(default="products", description="the serving index name (a Qdrant collection or "
                                                             "alias, a FAISS folder or pointer)")
    faiss_index_type: Literal["flat", "hnsw", "ivf", "auto"] = "flat"
    # ANN at scale (fashion_core/stores/ann_params.py chooses the rest by size; benchmarks/ann_scale.py measures).
    faiss_quantization: Literal["none", "sq8", "pq"] = Field(
        default="none", description="FAISS ANN codes: sq8 = 4x smaller, pq = 16x; re-ranked on float32 vectors")
    qdrant_quantization: Literal["none", "scalar", "product"] = Field(
        default="none", description="Qdrant quantization_config (int8 scalar or x16 product), searched with rescore")
    index_expected_size: int | None = Field(default=None, gt=0,
                                            description="catalog size a new Qdrant collection is tuned for (HNSW m)")
    index_search_ef: int | None = Field(default=None, gt=0, description="HNSW ef at query time; None = by size")
    # On by default (README "Qdrant's collection settings"): on the real model's embeddings grown to 100k, Qdrant's
    # plain filtered walk found 0.809 of the true top 10 for gender=Men, ACORN 0.968; the small filters are payload
    # index scans, which ACORN leaves alone.
    qdrant_acorn_max_selectivity: float | None = Field(
        default=1.0, ge=0, le=1, description="Qdrant server: filtered searches use ACORN when the filter keeps at "
        "most this share of the points (1 = always), for filters that follow the embedding; 0 or None = off")
    qdrant_oversampling: float | None = Field(
        default=None, ge=1, description="Qdrant with quantization: candidates rescored on the original vectors = this "
        "x k; None = by ann_params (4)")
    qdrant_full_scan_threshold_kb: int | None = Field(
        default=None, gt=0, description="hnsw_config.full_scan_threshold of a new Qdrant collection: a filter matching "
        "fewer vectors' KB than this per segment is an exact scan of its matches; None = by ann_params (10k vectors "
        "of the collection's dimension: 20000 at 512-d, 5000 at 128-d)")
    qdrant_companions: bool = Field(
        default=True, description="Qdrant server: an index created with this on keeps a companion collection per "
        "gender value, searched by gender filters (their own HNSW graphs: a filter on half the catalog that follows "
        "the embedding finds its true top-k); recorded in the collection, which every reader and writer follows; "
        "embedded Qdrant never keeps them (its searches are exact)")
    qdrant_shards: int = Field(default=1, gt=0, description="shard_number of a new collection (distributed Qdrant)")
    qdrant_replicas: int = Field(default=1, gt=0, description="replication_factor of a new collection")
    index_batch_size: int = Field(default=64, gt=0)

    # Text search: dense (embedding), lexical (BM25 over names and attributes) or hybrid (both fused); measured by
    # benchmarks/hybrid_search.py on the real catalog's test split (README, "Hybrid search").
    search_mode: SearchMode = Field(
        default="hybrid", description="mode of a text search that names none")
    # Measured (README, "Hybrid search"): blending (dense min-max, lexical over its best, each lexical hit weighed
    # by its share of the query's IDF mass) with the lexical ranking weighted 16:1 was selected on validation over
    # the catalog, on brand, attribute and partial (misspelt brand, unknown words) queries.
    fusion_method: FusionMethod = Field(
        default="blend", description="hybrid fusion: reciprocal rank fusion or normalised score blending")
    fusion_depth: int = Field(default=100, gt=0, le=1000, description="hits taken from each ranking before fusing")
    # finite only: an infinite weight or power turns every fused score into inf or nan (rankings of nothing)
    fusion_dense_weight: float = Field(default=1.0, ge=0, allow_inf_nan=False,
                                       description="weight of the dense ranking in the fusion")
    fusion_lexical_weight: float = Field(default=16.0, ge=0, allow_inf_nan=False,
                                         description="weight of the lexical ranking")
    fusion_coverage_power: float = Field(
        default=1.0, ge=0, allow_inf_nan=False,
        description="each lexical hit weighed by (its share of the query's IDF mass) ** this; "
        "0 = a hit matching one query word weighs like a full match")

    # Distributed pieces: all optional; None means in-process.
    redis_url: str | None = Field(default=None, description="Celery broker/result backend; None = in-process")
    encoder_address: str | None = Field(default=None, description="host:port of the encoder service")
    query_address: str = "127.0.0.1:50052"

    # Indexing jobs (indexer/): chunking, redelivery, retries and how many index versions to keep.
    index_chunk_size: int = Field(default=64, gt=0, description="products per indexing task")
    index_keep_versions: int = Field(default=2, ge=1, description="versions kept after a switch, serving one included")
    indexer_visibility_timeout_s: int = Field(default=3600, gt=0,
                                              description="seconds before Redis redelivers an unacknowledged task")
    indexer_max_retries: int = Field(default=5, ge=0, description="retries of a chunk on transient failures")
    indexer_redis_retry_s: float = Field(default=30.0, gt=0, description="how long the CLI and admin service "
                                         "retry Redis (job store and broker) before answering UNAVAILABLE")
    indexer_stall_s: float | None = Field(default=None, gt=0, description="a job with no chunk completed for this "
                                          "long gets its incomplete chunks queued again by the workers (a message "
                                          "the broker lost); None = the visibility timeout")
    indexer_worker_redis_wait_s: float = Field(default=600.0, gt=0, description="how long a worker waits for "
                                               "Redis before handing its chunk back to the queue")

    # Encoder service: dynamic batching and limits.
    encoder_max_batch: int = Field(default=32, gt=0, description="items per model batch")
    encoder_max_wait_ms: float = Field(default=5.0, ge=0, description="how long a batch waits to fill")
    encoder_queue_size: int = Field(default=256, gt=0, description="queued requests before RESOURCE_EXHAUSTED")
    encoder_max_items: int = Field(default=256, gt=0, description="texts or images in one call")
    rpc_timeout_s: float = Field(default=30.0, gt=0, description="default deadline of client calls")
    grpc_max_message_mb: float = Field(default=64.0, gt=0, description="largest gRPC message the servers take and "
                                       "the clients send; the encoder client splits image batches to fit it")

    @property
    def grpc_max_message_bytes(self) -> int:
        return int(self.grpc_max_message_mb * 1024 * 1024)

    @field_validator("model", "catalog", "qdrant_url", "redis_url", "encoder_address", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        return None if value is None else check_redis_url(value)

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

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
        config_file = os.environ.get(CONFIG_ENV_VAR)
        if config_file:
            sources.append(_config_file_source(settings_cls, config_file))
        return tuple(sources)

    def __init__(self, **values: Any) -> None:
        """Raises ConfigError (not pydantic's ValidationError) naming each bad setting by where it came from."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, explicit=values)) from None


def _config_file_source(settings_cls: type[BaseSettings], config_file: str) -> PydanticBaseSettingsSource:
    """The FASHION_CONFIG file's source (the file is read here); ConfigError when it is missing or unreadable."""
    path = Path(config_file)
    if not path.is_file():
        raise ConfigError(f"{CONFIG_ENV_VAR}={config_file}: no such file")
    if path.suffix not in {".yaml", ".yml", ".toml"}:
        raise ConfigError(f"{CONFIG_ENV_VAR}={config_file}: expected a .toml, .yaml or .yml file")
    kind = "TOML" if path.suffix == ".toml" else "YAML"
    import yaml  # pydantic-settings' YAML reader (PyYAML): its errors are none of the builtin ones

    try:
        if kind == "TOML":
            return TomlConfigSettingsSource(settings_cls, toml_file=path)
        return YamlConfigSettingsSource(settings_cls, yaml_file=path)
    # tomllib.TOMLDecodeError and UnicodeDecodeError are ValueErrors; a YAML list or scalar is a TypeError
    except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{CONFIG_ENV_VAR}={config_file}: not a valid {kind} table of settings: "
                          f"{_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _describe(exc: ValidationError, explicit: dict[str, Any]) -> str:
    """One line per bad value, joined: where it came from (an explicit value, the FASHION_* variable, the
    FASHION_CONFIG file), the value, and pydantic's reason without its links and type codes."""
    env = {key.upper() for key in os.environ}
    short = reprlib.Repr()
    short.maxstring = short.maxother = 80
    problems = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        top = str(error["loc"][0]) if error["loc"] else ""
        env_name = f"FASHION_{top.upper()}"
        where = ""
        if top in explicit:
            name = field
        elif env_name in env:
            name = env_name
        else:
            name = field
            if os.environ.get(CONFIG_ENV_VAR):
                where = f" (in {CONFIG_ENV_VAR} file {os.environ[CONFIG_ENV_VAR]})"
        reason = str(error["msg"]).removeprefix("Value error, ")
        value = "" if error["type"] == "missing" else f"={short.repr(error['input'])}"
        problems.append(f"{name}{value}{where}: {reason}")
    return "invalid setting " + "; ".join(problems)


def load_settings(**overrides: object) -> Settings:
    """Settings from env and file, with ``overrides`` (e.g. CLI flags; None values ignored) on top.

    Raises ConfigError for a bad value (naming the setting: its FASHION_* variable when it came from there) and for
    a FASHION_CONFIG file that is missing or not valid TOML/YAML."""
    values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**values)
