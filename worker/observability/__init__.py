"""What operators and Agora see of a running worker: probes, metrics, webhooks, reconciliation."""
