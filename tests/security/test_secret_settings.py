"""Secrets in the settings never show in a repr, a log line or an error message."""
from __future__ import annotations

import logging

from shared.kafka import client_args
from shared.settings import Settings


def test_the_sasl_password_is_hidden_but_reaches_the_client(caplog):
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="helpdesk", kafka_sasl_password="s3cret-pw")
    logging.getLogger("test").warning("settings: %r %s", settings, settings)
    assert "s3cret-pw" not in repr(settings) + str(settings) + caplog.text
    assert "s3cret-pw" not in settings.model_dump_json()
    assert client_args(settings)["sasl_plain_password"] == "s3cret-pw"
    assert Settings().sasl_password() is None


def test_the_database_urls_are_hidden_but_reach_the_driver(caplog):
    settings = Settings(database_url="postgresql://app:db-s3cret@db:5432/helpdesk",
                        migration_database_url="postgresql://ddl:ddl-s3cret@db:5432/helpdesk")
    logging.getLogger("test").warning("settings: %r", settings)
    shown = repr(settings) + str(settings) + caplog.text + settings.model_dump_json()
    assert "db-s3cret" not in shown and "ddl-s3cret" not in shown
    assert settings.dsn() == "postgresql://app:db-s3cret@db:5432/helpdesk"
    assert settings.migration_dsn() == "postgresql://ddl:ddl-s3cret@db:5432/helpdesk"
    assert Settings(database_url="postgresql://x@h/d").migration_dsn() == "postgresql://x@h/d"
