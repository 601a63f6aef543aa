"""The video DiT's components: PixArt weight conversion, text encoders, the text-embedding cache."""
