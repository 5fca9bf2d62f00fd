"""The shipping context (issue 9): shipments of orders, through carriers."""
