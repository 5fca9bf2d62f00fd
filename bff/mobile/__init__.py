"""The mobile BFF: compact profile and orders, small keyset pages, strong ETags."""
