"""Input and output: fetch (http(s) URLs), images (decode, EXIF, modes, PIL ↔ tensor), files (output checks, atomic
writes), recipe (PNG metadata), checkpoint (resumable runs)."""
