"""Where the service keeps things: S3, the records in Redis, the call gate, the broker."""
