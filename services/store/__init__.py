"""Storage: the server's own database, spoken to through one repository per aggregate.

Repositories answer with the frozen dataclasses of ``records``; tables (``models``) never leave this package.
"""
