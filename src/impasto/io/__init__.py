"""Input and output: images (paths, URLs, PIL), atomic saves, PNG recipe metadata."""
