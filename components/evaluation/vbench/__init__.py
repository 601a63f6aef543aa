"""VBench (Huang et al., CVPR 2024) in ReelForge: frame sampling, the dimensions, the official aggregation, the stage.

  frames        "16 frames", CLIP / DINO preprocessing exactly as VBench's utils.py (without torchvision)
  aggregate     Min/Max normalisation, weights, Quality / Semantic / Total
  catalog       the 16 dimensions: weights, auxiliary info, custom-mode support, implemented or not
  dimensions_*  the computations (pixel, consistency, clip, motion)
  prompts       suites (full-info JSON, .txt, the tiny suite), `{prompt}-{i}.mp4` names, custom folders
  weights, loaders, hub   the weights store → networks, loaded once, with sha256 records
  compute, report, sample, config, stage   the eval.vbench stage
"""
