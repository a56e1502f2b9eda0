"""copyscope: register works, find copies, explain them with aligned evidence."""
__version__ = "0.1.0"
