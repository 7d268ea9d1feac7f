"""The DropletVideo model side: transformer (CogVideoX MMDiT + motion intensity), weights, VAE/T5/scheduler
helpers, image-to-video conditioning and the sampling pipeline. Imports nothing of the data side."""
