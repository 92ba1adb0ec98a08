"""`python -m rag`: the command line, in rag/cli/ (main() and the parser there, one module per command group)."""

import sys

from rag.cli import main

if __name__ == "__main__":
    sys.exit(main())
