"""What every stage shares: the AU vocabulary, the frozen config, and one home for each policy
(image files, pixel ranges, atomic writes, progress, image grids). Imports nothing else of the package."""
