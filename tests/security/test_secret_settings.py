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
