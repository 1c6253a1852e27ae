"""Editing photos: faces found, edited at the model's size and pasted back; animations and sheets."""
