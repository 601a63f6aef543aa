"""Networks VBench scores with, in pure PyTorch with the official checkpoints' parameter names."""
