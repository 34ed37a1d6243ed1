"""The Kafka pipeline: consume → decode → schedule per key → execute → publish → commit."""
