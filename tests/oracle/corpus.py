"""Where the shared real-world corpus is (../shared/corpus beside the repository), and the skip when it is not.

A user's clone has no shared/ folder: corpus tests then print why and exit SKIP (ctest's SKIP_RETURN_CODE).
"""
import os

SKIP = 77
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "corpus"))


def folder(name):
    """The corpus folder `name` ("images", "checkpoints", ...), whether or not it exists."""
    return os.path.join(ROOT, name)


def missing(path, test):
    """True, after printing the skip message for `test`, when the corpus folder `path` does not exist."""
    if os.path.isdir(path):
        return False
    print(f"{test}: skipped: no corpus at {path} (it is not part of a clone)")
    return True


def summary(test, files, counts, problems):
    """Prints every problem and one line of counts; the exit code (1 when anything was wrong)."""
    for p in problems:
        print(p)
    print(f"{test}: {files} files ({', '.join(f'{v} {k}' for k, v in counts.items())}), {len(problems)} problems")
    return 1 if problems else 0
