"""The ConvoAI REST API: request building, the HTTP client, its errors and the outcome policy."""
