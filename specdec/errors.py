"""One exception type for everything a user can get wrong: its message is the one line they see."""


class SpecdecError(Exception):
    """A problem with the user's input or environment, phrased as one clear line."""
