"""Stage bench: lands with issue #5. Declared in dvc.yaml now so that the pipeline's shape is fixed."""

from vbert.cli import not_implemented

if __name__ == "__main__":
    not_implemented("bench", 5)
