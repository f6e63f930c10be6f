"""`python -m mla`: where the library comes from and what it can do."""
import sys

import mla


def main():
    print("mla Python package %s (%s)" % (mla.__version__, mla.__file__))
    print("library search order: %s" % ", ".join(mla.candidate_paths()))
    try:
        path = mla.library_path()
    except mla.MlaError as e:
        print("libmla: NOT LOADED: %s" % e)
        return 1
    print("libmla: %s, version %s, CUDA kernels usable: %s" % (path, mla.version_string(), mla.has_cuda()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
