"""Transport: the HTTP session, error classes, rate limiting and OAuth token endpoints. No database, no rules."""
