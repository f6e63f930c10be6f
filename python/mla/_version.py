# The package version; it always equals MLA_VERSION_{MAJOR,MINOR,PATCH} of include/mla.h.
# setup.py reads the header and rewrites this file in the build tree, and
# tests/python/test_packaging.py checks the committed copy against the header.
__version__ = "0.1.0"
