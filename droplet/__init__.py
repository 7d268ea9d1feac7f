"""droplet package."""
