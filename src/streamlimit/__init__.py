"""streamlimit: stop an account from watching more than its allowed number of streams at once."""

__version__ = "0.1.0"
