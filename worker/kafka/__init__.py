"""Kafka behind small ports: aiokafka for real clusters, an in-memory broker for tests."""
