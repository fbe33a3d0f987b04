import os

__version__ = "0.1.0"

# Icechunk's warning that local storage is not safe for concurrent commits is one the
# user cannot act on (runs hold a file lock per store): errors only, unless asked.
os.environ.setdefault("ICECHUNK_LOG", "error")
