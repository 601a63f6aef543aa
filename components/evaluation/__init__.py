"""Evaluation: reconstruction metrics (PSNR, SSIM, LPIPS), Fréchet distances on I3D features, the eval stages."""
