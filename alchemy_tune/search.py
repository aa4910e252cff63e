"""The entry ``ray submit`` runs: ``ray submit clusters/gpu.yaml alchemy_tune/search.py -- --address auto ...``.

Ray copies this file alone to the head node and runs it as a plain script, so it only calls the installed
package's ``alchemy-tune search`` command. The search itself is :mod:`alchemy_tune.tuning.search`. This file
is the one module outside the layers (it calls the CLI, the top layer); nothing imports it.
"""

import os
import sys

if __name__ == "__main__":
    # Run as a file, this folder would come first on sys.path and its subpackages (results/, trial/, ...)
    # would shadow top-level packages of the same names.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

    from alchemy_tune.cli import main

    sys.exit(main(["search", *sys.argv[1:]]))
