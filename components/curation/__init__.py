"""Data curation (RECIPE.md §1): split → score → caption → filter and tier."""
