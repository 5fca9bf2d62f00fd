"""The payments context (issue 9): payments of orders, through a payment provider."""
