"""Accounts: installing the app on a HubSpot portal, connecting QuickBooks companies to it, and undoing both."""
