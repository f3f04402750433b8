"""`python -m toolkit.cli`: the `venuedb` command (how `venuedb fleet apply` starts one
`venuedb apply` per database with the same interpreter)."""

from toolkit.cli import main

if __name__ == "__main__":
    main()
