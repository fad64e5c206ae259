"""What two or more helpdesk services share: settings, Kafka, PostgreSQL, outbox, timers, policies."""
