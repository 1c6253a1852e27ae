"""Procedural faces driven by AUs: identities, their geometry, the renderer, and dataset folders
of them, whose true edits give evaluation a ground truth."""
