"""The `mepipe` command line: the one room that knows both the engine (`pipeline`) and
the training module (`training`); neither imports it.

Importing it sets the process's memory settings before pyarrow loads: Arrow allocates
from the system allocator unless ARROW_DEFAULT_MEMORY_POOL names a pool. Arrow's default,
mimalloc, reserves memory in segments of several MB and keeps them; for the driver's
tables (a few MB) that was most of its memory growth with the number of samples
(benchmarks/README.md, "Memory against the number of clips"). The variable is read
once, when pyarrow loads, and is inherited by the local dask workers.
"""

import os

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
