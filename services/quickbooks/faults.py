"""QuickBooks Online fault codes the server reacts to (Intuit's error list; see the reference notes)."""

from __future__ import annotations

# The user who connected the company is no longer an admin / the grant lacks authorization: reconnect.
NO_LONGER_ADMIN = "120"
AUTHORIZATION_FAILED = "3100"
# Throttled; Intuit asks for a minute's pause.
THROTTLE_EXCEEDED = "3001"
# The object does not exist (deleted or made inactive).
OBJECT_NOT_FOUND = "610"
INVALID_REFERENCE = "2500"
# Another customer, vendor or employee (or item) already uses this name.
DUPLICATE_NAME = "6240"

# Codes that only reconnecting the company can fix.
RECONNECT = (NO_LONGER_ADMIN, AUTHORIZATION_FAILED)
# Codes that mean a reference in the request points at something QuickBooks does not know (any more).
UNKNOWN_REFERENCE = (INVALID_REFERENCE, OBJECT_NOT_FOUND)
