"""The small common core every stage uses: atomic writes, params.yaml sections, errors, the stage CLI wrapper,
an ordered parallel map, the provenance of persistent outputs, and files shipped inside installed packages."""
