"""Using a trained generator: loading, sampling, interpolation, FID/KID, training reports."""
