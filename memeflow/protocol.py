"""What the client and the gateway agree on: how a call carries the API key, and how many
documents one HTTP request may hold."""

from memeflow import config

KEY_HEADER = "x-api-key"  # or `Authorization: Bearer KEY`
HTTP_MAX_DOCS = 100  # Jina's HTTP request size: the gateway answers no more than this


def client_headers(key: str | None = None) -> dict[str, str]:
    """What a client sends: the key from MEMEFLOW_API_KEY unless given, else nothing."""
    key = key if key is not None else config.api_key()
    return {"authorization": f"Bearer {key}"} if key else {}
