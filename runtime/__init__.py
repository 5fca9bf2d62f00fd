"""The process runtime every service shares: settings, logs, clocks, supervision, HTTP."""
