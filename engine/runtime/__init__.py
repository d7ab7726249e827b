"""Process plumbing: control messages, child start-up, the children, cycles, reload, status."""
