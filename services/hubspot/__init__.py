"""HubSpot: the CRM and callback client, object types and property lists, and the action's output format."""
