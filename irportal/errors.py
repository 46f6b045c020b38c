class StateConflict(Exception):
    """A change the object's current state refuses (HTTP 409); the message says why."""
