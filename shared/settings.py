"""Configuration from the environment (names fixed by the contract)."""
from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.durations import parse_duration

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DATABASE_URL = "postgresql://helpdesk:helpdesk@127.0.0.1:55432/helpdesk"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    kafka_bootstrap_servers: str = "localhost:9092"
    database_url: SecretStr = SecretStr(LOCAL_DATABASE_URL)  # its password never shows in a repr or log: read it with dsn()
    helpdesk_config_dir: Path = REPO_ROOT / "config"
    # The learned classifier's files: `classifier.joblib` (helpdesk classifier train) and the
    # embedding table `static-e5/` (helpdesk classifier distill). Built by `make model`.
    helpdesk_model_dir: Path = REPO_ROOT / ".models"
    metrics_port: int | None = None  # each service has its own default
    kafka_partitions: int = Field(default=6, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    # Prepended to every topic and consumer group: lets tests, benchmarks and a staging
    # environment share one broker without seeing each other's traffic. Empty in production.
    helpdesk_topic_prefix: str = ""
    # Kafka security (see README "Security"): PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"  # or SCRAM-SHA-256, PLAIN
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None  # shown as '**********' in any repr or log
    # The outbox relay publishes each batch in a Kafka transaction with its position (effectively
    # once: no event twice on an output topic, shared/outbox_tx.py). False: at-least-once publication
    # (a crash can publish a batch again; consumers absorb it by event id), for brokers without
    # transactions or without the TransactionalId ACL.
    kafka_transactions: bool = True
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    # Schema changes: each service migrates its own schema at start (the default), or, with
    # MIGRATE_ON_START=false, waits until `helpdesk migrate` (run with MIGRATION_DATABASE_URL, a role
    # that may change the schemas) has brought it to the version its code needs; DATABASE_URL's
    # role then needs only the rights `helpdesk migrate --grant-to ROLE` gives (README, "Migrations").
    migrate_on_start: bool = True
    migration_database_url: SecretStr | None = None
    migration_grant_to: str | None = None  # the runtime role `helpdesk migrate` grants read/write rights to
    db_pool_min: int = 2
    db_pool_max: int = 10
    outbox_batch_size: int = 500
    # Inbound records handled per database transaction (at most; one Kafka fetch), and how long
    # an idle consumer waits for records before it looks again.
    consumer_batch_size: int = Field(default=500, ge=1)
    consumer_batch_wait: float = Field(default=0.05, gt=0)
    timer_batch_size: int = 500
    timer_poll_interval: float = 0.2  # seconds between looks for due timers: bounds fire lag
    policy_check_interval: float = 1.0  # seconds between looks at policy files for edits
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object per line with event, case and trace ids
    # How long an inbound event id is remembered for de-duplication (shared/inbox_retention.py): a
    # duration ('7d', '36h'). Keep it at least the inbound topics' retention (Kafka's default is 7
    # days): a record redelivered after its id was forgotten would be handled again.
    processed_events_retention: Annotated[timedelta, BeforeValidator(parse_duration)] = timedelta(days=7)
    processed_events_prune_interval: float = Field(default=600.0, gt=0)  # seconds between prunes

    def dsn(self) -> str:
        """DATABASE_URL in clear, for the database driver only (the field is a SecretStr)."""
        return self.database_url.get_secret_value()

    def migration_dsn(self) -> str:
        """MIGRATION_DATABASE_URL in clear, else DATABASE_URL: what `helpdesk migrate` connects with."""
        return self.migration_database_url.get_secret_value() if self.migration_database_url else self.dsn()

    def sasl_password(self) -> str | None:
        """The SASL password in clear, for the Kafka client only (the field is a SecretStr)."""
        return None if self.kafka_sasl_password is None else self.kafka_sasl_password.get_secret_value()

    def topic(self, name: str) -> str:
        return f"{self.helpdesk_topic_prefix}{name}"

    def group(self, service: str) -> str:
        """The stem of every consumer group of a service: `<prefix>helpdesk-<service>`. A group itself
        is always this stem, a dot and a name (`consumer_group`), so one prefixed ACL on
        `<prefix>helpdesk-<service>.` covers all of a service's groups (README, "Security")."""
        return f"{self.helpdesk_topic_prefix}helpdesk-{service}"

    def consumer_group(self, service: str, consumer: str) -> str:
        """A service's consumer group: `<prefix>helpdesk-<service>.<consumer>`, where `consumer` names
        what the group reads (its topic, or e.g. "inbound" for one consumer of several topics).
        Raises ValueError for an empty name."""
        if not consumer:
            raise ValueError("a consumer group needs a name after the service's stem")
        return f"{self.group(service)}.{consumer}"

    def policy_path(self, filename: str) -> Path:
        return Path(self.helpdesk_config_dir) / filename

    @property
    def classifier_artifact(self) -> Path:
        return Path(self.helpdesk_model_dir) / "classifier.joblib"

    @property
    def embeddings_dir(self) -> Path:
        return Path(self.helpdesk_model_dir) / "static-e5"


@lru_cache
def get_settings() -> Settings:
    return Settings()
