"""pytest setup for the Python package tests.

The packages are imported from <repo>/python (set MLA_TEST_INSTALLED=1 to test an installed
copy instead). libmla is found as the package finds it: $MLA_LIBRARY, python/mla/libmla.so,
<repo>/build/libmla.so; run `make lib` (or point MLA_LIBRARY at a build) first."""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
if os.environ.get("MLA_TEST_INSTALLED") != "1":
    sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, HERE)
