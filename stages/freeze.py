"""Stage freeze: lands with issue #4. Declared in dvc.yaml now so that the pipeline's shape is fixed."""

from vbert.cli import not_implemented

if __name__ == "__main__":
    not_implemented("freeze", 4)
