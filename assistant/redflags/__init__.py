"""Red-flag detection: a multi-label classifier over abusive and escalation labels, with spans."""
