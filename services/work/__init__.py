"""Work: RQ jobs, the queue, the sweeper and the registry of action handlers."""
