"""The notifier service: turns planning, execution and KPI events into e-mails and webhooks."""
