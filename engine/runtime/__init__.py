"""Process plumbing: supervisor/child control messages, child start-up, cycle timing."""
