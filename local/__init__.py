"""Local stand-ins for AWS, Unpod and the Lambda runtime (`make run`, tests, benchmark).

Importing this package puts `src/` (the Lambda code) on sys.path, the way the
Lambda runtime puts the function's code root on it.
"""

import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parent.parent / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)
