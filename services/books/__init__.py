"""The bookkeeping rules: what each action reads, checks and writes to the books, exactly once.

No Flask, RQ, SQLAlchemy or requests here: storage and locks come in through the ports in ``ports``.
"""
