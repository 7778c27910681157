"""Generated from proto/v1/messages.proto: do not edit (tests/unit/test_contracts.py checks)."""
