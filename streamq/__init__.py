"""streamq: operate a DynamoDB-stream outbox."""

__version__ = "0.1.0"
