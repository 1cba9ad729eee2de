"""QuickBooks Online: the Accounting API client, the query language and the fault codes the server reacts to."""
