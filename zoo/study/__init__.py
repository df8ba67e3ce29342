"""The UNet++ vs Mask2Former study: segmentation losses and metrics, fine-tuning, and the demo."""
