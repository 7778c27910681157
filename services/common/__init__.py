"""What the services share: errors → JSON, upload reading."""
